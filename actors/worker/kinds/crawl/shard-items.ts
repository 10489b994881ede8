// What a sharded crawl's queue carries and what a shard holds of it: the
// queue item's wire form and its check, the held job, the holding bounds,
// and a shard's share of maxPages. Kept apart from the shard loop
// (sharded.ts) because tests and the checkpoint use them without a loop.

import type { Json } from '#kinds/api.js';
import { canonicalize } from './frontier.js';
import type { Entry } from './host-queues.js';
import type { ShardCounts } from './shard-progress.js';

/** Most queue items a shard holds unacknowledged (the consumer allows 10,000). */
export const WINDOW = 4000;
/** Most queued items one host keeps while the window is full (deferral.ts). */
export const HOST_CAP = 500;
/** Most hosts whose politeness state the etcd checkpoint keeps. */
export const MAX_HOSTS_KEPT = 256;

/** A queue item as sent between shards. */
export interface QueueItem {
  [k: string]: Json;
  u: string;
  d: number;
}

/** Job is one held queue item: a frontier entry plus what its acknowledgement waits for. */
export interface Job extends Entry {
  ack: () => Promise<void>;
  /** The seen delta that must be stored before the ack (set once finished). */
  ticket: number;
  /** The hash of the URL the item carried (job.url moves along redirects and retries). */
  hash: [number, number];
  /** Hashes of redirect targets this job claimed, as [hi, lo, …]: logged with its own once it is finished. */
  claimed?: number[];
  /** Times this URL was deferred. */
  k: number;
  id: string;
  /** Being fetched (counted in inFlight). */
  fetching?: boolean;
}

/** The result (and progress) of one shard of a sharded crawl. */
export interface ShardCrawlResult extends ShardCounts {
  [k: string]: Json;
  shard: number;
  parked: string[];
}

/**
 * shareOf is shard `index`'s part of maxPages: the shares add up to maxPages
 * exactly, so the whole crawl never overshoots; the price is that a shard
 * whose hosts run dry leaves its unused share unused.
 */
export const shareOf = (maxPages: number, index: number, count: number): number =>
  Math.floor(maxPages / count) + (index < maxPages % count ? 1 : 0);

const isCount = (v: Json | undefined): v is number | undefined => v === undefined || (typeof v === 'number' && Number.isInteger(v) && v >= 0);

/**
 * parseItem checks a queue item (`k`: times deferred, `t`: wall ms it was
 * deferred at, `r`: times sent again for want of a receipt, receipts.ts);
 * anything else is undefined.
 */
export function parseItem(v: Json): QueueItem & { k?: number; t?: number; r?: number } | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const { u, d, k, t, r } = v;
  if (typeof u !== 'string' || typeof d !== 'number' || !Number.isInteger(d) || d < 0) return undefined;
  if (!isCount(k) || !isCount(r)) return undefined;
  if (canonicalize(u) !== u) return undefined;
  return { u, d, ...(k !== undefined ? { k } : {}), ...(typeof t === 'number' ? { t } : {}), ...(r !== undefined ? { r } : {}) };
}
