// The deferral rule of a sharded crawl. A shard holds at most `window`
// queue items unacknowledged (its in-memory frontier plus what it fetches);
// the rest wait in its JetStream queue. A slow host (Crawl-delay,
// Retry-After, back-off) drains its local queue slowly, so on its own it
// could fill the window and starve every other host of the shard. So once
// the window is full, a host holding more than `cap` queued items gives its
// newest ones back: each is sent to the shard's own queue again (a new id,
// so the duplicate window does not drop it) and the held copy acknowledged,
// which puts it behind everything queued meanwhile. With every host at or
// under the cap a full window holds at least window/cap hosts' items, so
// the shard keeps fetching at the pace of that many hosts. A deferred item
// that comes straight back says nothing else waits in the queue; deferring
// then only sends items round in circles, so the shard pauses it (5 s,
// doubling to 60 s; sharded.ts) and lets the window wait for room.

/** toDefer says how many queued items each over-cap host gives back, or nothing while the window has room. */
export function toDefer(held: number, window: number, queued: Iterable<[string, number]>, cap: number): Array<[string, number]> {
  if (held < window) return [];
  const out: Array<[string, number]> = [];
  for (const [host, n] of queued) if (n > cap) out.push([host, n - cap]);
  return out;
}

/** deferredId is the queue id of the k-th deferral of the item with id `id` (k = 0 is the item as first sent). */
export const deferredId = (id: string, k: number): string => (k === 0 ? id : `${id}.d${k}`);
