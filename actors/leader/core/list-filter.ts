// resource.list with filters, and the summary cluster.status answers with.
// A filtered page walks names in order from `after` (and from the prefix, if
// one is given), or only the worker's own names when it filters by a live
// worker, and takes what matches. A page looks at no more than MAX_SCAN names:
// a filter that matches little in a big cluster then answers a short (even
// empty) page with `next`, instead of holding the leader for a whole pass.

import { LIST_PAGE_BYTES, LIST_PAGE_MAX, type ListRequest, type Resource, type ResourceState, type ResourceSummary } from '#protocol/messages.js';
import { matchesFilter } from '#protocol/list-query.js';
import { toResource } from '#protocol/stored.js';
import { isShardName } from '#protocol/shards.js';
import type { ClusterState } from './state.js';
import type { Entry } from './records.js';

/** Most names one filtered page looks at. */
export const MAX_SCAN = 100_000;

export interface Page {
  resources: Resource[];
  next?: string;
}

/** firstAfter is the index of the first name greater than `after` (or at least `from`) in sorted `names`. */
export function firstAfter(names: readonly string[], key: string, inclusive: boolean): number {
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (names[mid]! < key || (!inclusive && names[mid] === key)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** filteredPage answers a list request with filters (see the top of this file). */
export function filteredPage(s: ClusterState, q: ListRequest, maxScan = MAX_SCAN, maxBytes = LIST_PAGE_BYTES): Page {
  const limit = q.limit ?? LIST_PAGE_MAX;
  const w = q.worker ? s.workers.get(q.worker) : undefined;
  const names = w ? [...w.names].sort() : s.names();
  let i = q.after !== undefined ? firstAfter(names, q.after, false) : 0;
  if (q.prefix !== undefined && (i >= names.length || names[i]! < q.prefix)) i = Math.max(i, firstAfter(names, q.prefix, true));
  const out: Resource[] = [];
  let bytes = 0;
  let scanned = 0;
  for (; i < names.length && out.length < limit; i++) {
    const name = names[i]!;
    if (q.prefix !== undefined && !name.startsWith(q.prefix)) return { resources: out };
    if (scanned++ === maxScan) return { resources: out, next: names[i - 1]! };
    const e = s.resources.get(name)!;
    // Shards are shown within their resource (resource.get), not listed as resources.
    if (isShardName(name) || !matchesFilter(e.rec, q)) continue;
    bytes += sizeOf(e);
    if (bytes > maxBytes && out.length > 0) break;
    out.push(toResource(e.rec, e.revision));
  }
  // More may remain: the page is full, or it stopped at its byte limit.
  if (i < names.length && (q.prefix === undefined || names[i]!.startsWith(q.prefix))) return { resources: out, next: out.length > 0 ? out[out.length - 1]!.name : names[i - 1]! };
  return { resources: out };
}

/** sizeOf estimates a resource's JSON size, as page does. */
function sizeOf(e: Entry): number {
  const j = (v: unknown) => (v === undefined ? 0 : JSON.stringify(v).length);
  return 300 + e.rec.name.length + j(e.rec.spec) + j(e.rec.result) + j(e.rec.progress);
}

/**
 * Summaries counted, by state and batch: every cluster.status in one batch
 * shares one count (a million resources take tens of milliseconds to count,
 * and many pollers may ask at once), and the next batch counts again, so an
 * answer never misses what an earlier batch did.
 */
const counted = new WeakMap<ClusterState, { batch: number; value: ResourceSummary }>();

/** summary counts resources by state: what cluster.status answers instead of a listing. */
export function summary(s: ClusterState): ResourceSummary {
  const last = counted.get(s);
  if (last && last.batch === s.batch) return last.value;
  const byState: Partial<Record<ResourceState, number>> = {};
  let total = 0;
  for (const e of s.resources.values()) {
    if (isShardName(e.rec.name)) continue; // a shard counts within its resource
    byState[e.rec.state] = (byState[e.rec.state] ?? 0) + 1;
    total++;
  }
  const value = { total, byState };
  counted.set(s, { batch: s.batch, value });
  return value;
}
