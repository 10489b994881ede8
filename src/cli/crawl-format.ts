// What `gaffer crawl NAME` shows of a crawl: one row per shard (or one for an
// unsharded crawl) and a combined row, from the progress each shard reports
// while it runs, or from its result once the crawl is done (a shard stopped
// at completion keeps its last progress as its result). Plain values in,
// plain values out, so it is tested without a cluster.

import type { Json, Resource } from '#protocol/messages.js';
import { table, type Align } from '#lib/table.js';

/** CrawlRow is one shard's numbers (the crawl kind's progress fields; `pages` in results). */
export interface CrawlRow {
  shard: number | 'all';
  state: string;
  worker: string | null;
  fetched: number;
  queued: number;
  held: number;
  errors: number;
  duplicates: number;
  pagesPerSec: number;
  parked: string[];
  /** Items stored in the shard's queue, held ones included (null when it could not be counted, e.g. no permission). */
  backlog: number | null;
}

export interface CrawlView {
  name: string;
  state: string;
  shards: CrawlRow[];
  combined: CrawlRow;
}

const num = (o: { [k: string]: Json } | undefined, ...keys: string[]): number => {
  for (const k of keys) {
    const v = o?.[k];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return 0;
};

const obj = (v: Json | undefined): { [k: string]: Json } | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? v : undefined);

function row(shard: number, state: string, worker: string | null, p: { [k: string]: Json } | undefined, backlog: number | null): CrawlRow {
  const parked = Array.isArray(p?.parked) ? p.parked.filter((h): h is string => typeof h === 'string') : [];
  return {
    shard, state, worker,
    fetched: num(p, 'fetched', 'pages'),
    queued: num(p, 'queued'),
    held: num(p, 'held'),
    errors: num(p, 'errors'),
    duplicates: num(p, 'duplicates'),
    // A finished shard fetches nothing more.
    pagesPerSec: state === 'running' ? num(p, 'pagesPerSec') : 0,
    parked,
    backlog,
  };
}

/**
 * crawlView reads a crawl resource (sharded or not) into rows; `backlog`, when
 * given, is each shard's count of items stored in its queue (the CLI asks
 * JetStream for it: a shard itself sees only what it holds).
 */
export function crawlView(r: Resource, backlog?: readonly number[]): CrawlView {
  const results = obj(r.result)?.shards;
  let shards: CrawlRow[];
  if (r.shards) {
    shards = r.shards.map((s) => row(s.index, s.state, s.worker, obj(s.progress) ?? (Array.isArray(results) ? obj(results[s.index]) : undefined), backlog?.[s.index] ?? null));
  } else {
    shards = [row(0, r.state, r.worker, r.state === 'completed' ? (obj(r.result) ?? obj(r.progress)) : obj(r.progress), null)];
  }
  const counted = shards.every((s) => s.backlog !== null);
  const combined: CrawlRow = { shard: 'all', state: r.state, worker: null, fetched: 0, queued: 0, held: 0, errors: 0, duplicates: 0, pagesPerSec: 0, parked: [], backlog: counted ? 0 : null };
  for (const s of shards) {
    combined.fetched += s.fetched;
    combined.queued += s.queued;
    combined.held += s.held;
    combined.errors += s.errors;
    combined.duplicates += s.duplicates;
    combined.pagesPerSec = Math.round((combined.pagesPerSec + s.pagesPerSec) * 10) / 10;
    combined.parked.push(...s.parked);
    if (combined.backlog !== null) combined.backlog += s.backlog!;
  }
  combined.parked = [...new Set(combined.parked)].sort();
  return { name: r.name, state: r.state, shards, combined };
}

const HEADERS = ['SHARD', 'STATE', 'WORKER', 'FETCHED', 'QUEUED', 'HELD', 'BACKLOG', 'ERRORS', 'DUPLICATES', 'PAGES/S', 'PARKED'];
const ALIGN: Align[] = ['right', 'left', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'left'];

const cells = (s: CrawlRow) => [s.shard, s.state, s.worker ?? '-', s.fetched, s.queued, s.held, s.backlog ?? '-', s.errors, s.duplicates, s.pagesPerSec, s.parked.join(',') || '-'];

/** crawlTable is the view for people: a row per shard, then the combined row when there are several. */
export function crawlTable(v: CrawlView): string {
  const rows = v.shards.map(cells);
  if (v.shards.length > 1) rows.push(cells(v.combined));
  return `${v.name}: ${v.state}\n\n${table(HEADERS, rows, { align: ALIGN })}`;
}
