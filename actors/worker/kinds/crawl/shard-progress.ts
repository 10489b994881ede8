// A shard's counters and the progress it reports. The counters are also its
// result and part of its checkpoint, so they live apart from the loop that
// bumps them (sharded.ts); the pages/s rate is over the last RATE_WINDOW_MS.

import type { Json } from '#kinds/api.js';
import type { ShardCrawlResult } from './shard-items.js';

const RATE_WINDOW_MS = 5000;

/**
 * Why a URL was not fetched: the spec's filters (sameHost, include/exclude,
 * maxDepth), robots.txt, its host parked after failing parkAfter times in a
 * row, or the shard's share of maxPages used up.
 */
export type SkipReason = 'filtered' | 'robots' | 'parked' | 'maxPages';
export type Skips = { [R in SkipReason]: number };

export const noSkips = (): Skips => ({ filtered: 0, robots: 0, parked: 0, maxPages: 0 });

/** The counters a shard keeps across attempts (through its checkpoint). */
export interface ShardCounts {
  pages: number;
  errors: number;
  /** URLs not fetched, all reasons; `skips` says why (parked: their host failed parkAfter times in a row). */
  skipped: number;
  skips: Skips;
  /** Items dropped because their URL was seen before (a link found on another page). */
  duplicates: number;
  /** Items sent to the back of the queue (deferral.ts). */
  deferred: number;
  /** URLs sent again because their owner's receipt did not come (receipts.ts): 0 unless the queue lost items. */
  resent: number;
}

/** What the loop knows now and reports alongside the counters. */
export interface ShardGauges {
  queued: number;
  held: number;
  inFlight: number;
  parked: string[];
  /** URLs sent and not yet handled by their owners (receipts.ts). */
  unconfirmed: number;
}

export class ShardProgress implements ShardCounts {
  pages = 0;
  errors = 0;
  skipped = 0;
  skips = noSkips();
  duplicates = 0;
  deferred = 0;
  resent = 0;
  /** [ms, pages] samples over the last RATE_WINDOW_MS. */
  private readonly rate: Array<[number, number]> = [];

  constructor(
    private readonly shard: number,
    private readonly send: (value: Json) => void,
  ) {}

  restore(c: ShardCounts): void {
    ({ pages: this.pages, errors: this.errors, skipped: this.skipped, duplicates: this.duplicates, deferred: this.deferred, resent: this.resent } = c);
    this.skips = { ...c.skips };
  }

  result(parked: string[]): ShardCrawlResult {
    return {
      shard: this.shard, pages: this.pages, errors: this.errors, skipped: this.skipped, skips: { ...this.skips },
      duplicates: this.duplicates, deferred: this.deferred, resent: this.resent, parked,
    };
  }

  /** sample records the page count now, for pagesPerSec (once a second). */
  sample(): void {
    const now = Date.now();
    this.rate.push([now, this.pages]);
    while (this.rate.length > 1 && now - this.rate[0]![0] > RATE_WINDOW_MS) this.rate.shift();
  }

  report(g: ShardGauges): void {
    const now = Date.now();
    const first = this.rate[0];
    const pagesPerSec = first && now > first[0] ? Math.round(((this.pages - first[1]) * 1000 * 10) / (now - first[0])) / 10 : 0;
    this.send({
      fetched: this.pages,
      // The result's name for it: a shard stopped at completion keeps this progress as its result.
      pages: this.pages,
      queued: g.queued,
      held: g.held,
      inFlight: g.inFlight,
      errors: this.errors,
      skipped: this.skipped,
      skips: { ...this.skips },
      duplicates: this.duplicates,
      deferred: this.deferred,
      resent: this.resent,
      unconfirmed: g.unconfirmed,
      parked: g.parked,
      pagesPerSec,
    });
  }
}
