// SeenLog keeps a sharded crawl's seen-set durable outside etcd: deltas
// (delta-log.ts) in the shard's task store, keys `seen.<n>`, each the base64
// of the 8-byte hashes added since the previous delta (at most
// MAX_DELTA_HASHES, which keeps each value under the 64 KiB limit).
//
// A hash is logged when its URL is finished: fetched, failed for good, or
// skipped, never when it is only taken from the queue. So the log is also
// the shard's receipts: a shard that sent a URL here reads this log
// (receipts.ts) to learn that the URL was handled, whatever happened to the
// queue item in between. A crawl acknowledges a queue item only once its
// URL's hash is durable, so no URL whose item left the queue is forgotten
// by the next owner of the shard; an item held when its shard stopped is
// not in the log, and its next owner takes it again.

import type { Clock } from '#platform/clock.js';
import type { TaskStore } from '#kinds/api.js';
import { DeltaLog, FLUSH_MS, loadDeltas, type Loaded } from './delta-log.js';
import type { SeenSet } from './seen-set.js';

export { FLUSH_MS };
/** 6,000 hashes: 48,000 bytes, 64,000 characters of base64, under the store's 64 KiB per value. */
export const MAX_DELTA_HASHES = 6000;
export const SEEN_PREFIX = 'seen';

export const deltaKey = (n: number): string => `${SEEN_PREFIX}.${n}`;

export class SeenLogError extends Error {
  override name = 'SeenLogError';
}

/** encodeDelta packs [hi, lo, hi, lo, …] (unsigned 32-bit halves) as base64 of big-endian 8-byte hashes. */
export function encodeDelta(flat: ArrayLike<number>): string {
  if (flat.length % 2 !== 0) throw new SeenLogError('seen delta: odd number of halves');
  const b = Buffer.allocUnsafe(flat.length * 4);
  for (let i = 0; i < flat.length; i++) b.writeUInt32BE(flat[i]! >>> 0, i * 4);
  return b.toString('base64');
}

/** decodeDelta reverses encodeDelta; throws SeenLogError for anything it did not write. */
export function decodeDelta(v: unknown): Uint32Array {
  if (typeof v !== 'string') throw new SeenLogError('seen delta: not a string');
  const b = Buffer.from(v, 'base64');
  if (b.length % 8 !== 0 || b.toString('base64') !== v) throw new SeenLogError('seen delta: not base64 of 8-byte hashes');
  const out = new Uint32Array(b.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = b.readUInt32BE(i * 4);
  for (let i = 0; i < out.length; i += 2) if (out[i] === 0 && out[i + 1] === 0) throw new SeenLogError('seen delta: zero hash');
  return out;
}

/** loadSeen reads every delta back into each of `into`; `written` is the checkpoint's count (a lower bound). */
export async function loadSeen(store: Pick<TaskStore, 'get'>, written: number, ...into: SeenSet[]): Promise<Loaded & { hashes: number }> {
  let hashes = 0;
  const got = await loadDeltas((k) => store.get(k), SEEN_PREFIX, written, (v) => {
    const flat = decodeDelta(v);
    for (let k = 0; k < flat.length; k += 2) for (const s of into) s.addHash(flat[k]!, flat[k + 1]!);
    hashes += flat.length / 2;
  });
  return { ...got, hashes };
}

export class SeenLog extends DeltaLog<number> {
  constructor(store: Pick<TaskStore, 'put'>, clock: Clock, start: number) {
    super(store, clock, { prefix: SEEN_PREFIX, cost: () => 1, maxCost: MAX_DELTA_HASHES * 2, encode: encodeDelta }, start);
  }

  /** addHash logs one finished URL's hash and returns its ticket. */
  addHash(hi: number, lo: number): number {
    return this.add([hi, lo]);
  }
}
