// SentLog keeps durable, in the shard's task store, every URL this shard has
// sent to any shard's queue (its own included), as deltas (delta-log.ts)
// under keys `sent.<n>`, each a JSON list of [url, depth]. A shard that
// starts again reads it back to learn which of its sends still wait for a
// receipt (receipts.ts): without it, an item the queue lost after its
// sender moved would be missed by everyone.

import type { Clock } from '#platform/clock.js';
import type { Json, TaskStore } from '#kinds/api.js';
import { DeltaLog, loadDeltas, type Loaded } from './delta-log.js';

export const SENT_PREFIX = 'sent';
/** Characters of URL (plus a little for the depth and the JSON) per delta: under the store's 64 KiB per value. */
const MAX_DELTA_CHARS = 56_000;

export type Sent = [url: string, depth: number];

export class SentLogError extends Error {
  override name = 'SentLogError';
}

/** decodeSent checks one stored delta; throws SentLogError for anything SentLog did not write. */
export function decodeSent(v: Json): Sent[] {
  if (!Array.isArray(v)) throw new SentLogError('sent delta: not a list');
  for (const e of v) {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || typeof e[1] !== 'number' || !Number.isInteger(e[1]) || e[1] < 0) {
      throw new SentLogError('sent delta: not a list of [url, depth]');
    }
  }
  return v as Sent[];
}

/** loadSent hands every URL this shard logged as sent to `each`, oldest first. */
export function loadSent(store: Pick<TaskStore, 'get'>, written: number, each: (url: string, depth: number) => void): Promise<Loaded> {
  return loadDeltas((k) => store.get(k), SENT_PREFIX, written, (v) => {
    for (const [u, d] of decodeSent(v)) each(u, d);
  });
}

export class SentLog extends DeltaLog<Sent> {
  constructor(store: Pick<TaskStore, 'put'>, clock: Clock, start: number) {
    super(store, clock, { prefix: SENT_PREFIX, cost: (s) => s[0].length + 16, maxCost: MAX_DELTA_CHARS, encode: (values) => values.map(([u, d]) => [u, d]) }, start);
  }
}
