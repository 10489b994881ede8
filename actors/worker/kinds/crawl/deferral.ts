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
// doubling to 60 s: DeferPause) and lets the window wait for room.

import type { Clock } from '#platform/clock.js';

/** A deferred item back sooner than this means nothing else waits in the queue: deferring only churns. */
const QUICK_RETURN_MS = 1000;
const DEFER_PAUSE_MS = 5000;
const DEFER_PAUSE_MAX_MS = 60_000;

/** toDefer says how many queued items each over-cap host gives back, or nothing while the window has room. */
export function toDefer(held: number, window: number, queued: Iterable<[string, number]>, cap: number): Array<[string, number]> {
  if (held < window) return [];
  const out: Array<[string, number]> = [];
  for (const [host, n] of queued) if (n > cap) out.push([host, n - cap]);
  return out;
}

/** deferredId is the queue id of the k-th deferral of the item with id `id` (k = 0 is the item as first sent). */
export const deferredId = (id: string, k: number): string => (k === 0 ? id : `${id}.d${k}`);

/**
 * DeferPause notes how long deferred items take to come back. Straight back
 * means the queue holds nothing else to fetch meanwhile: then deferring only
 * sends items round in circles, so it pauses (5 s, doubling up to 60 s while
 * it keeps happening) and the window waits for room.
 */
export class DeferPause {
  /** Deferral is paused until then (clock time). */
  private until = 0;
  private pauseMs = DEFER_PAUSE_MS;

  constructor(private readonly clock: Clock) {}

  get paused(): boolean {
    return this.clock.now() < this.until;
  }

  /** back notes that a deferred item came back `ms` after it was deferred. */
  back(ms: number): void {
    if (ms >= QUICK_RETURN_MS) {
      this.pauseMs = DEFER_PAUSE_MS;
      return;
    }
    const now = this.clock.now();
    if (now < this.until) return;
    this.until = now + this.pauseMs;
    this.pauseMs = Math.min(this.pauseMs * 2, DEFER_PAUSE_MAX_MS);
  }
}
