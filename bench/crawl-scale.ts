// Crawl scale (`BENCH_ONLY=crawl-scale npm run bench`, issue 20 §3): the
// sharded crawl over the 50-host loopback site (test/fixtures/multisite.ts in
// its counts mode: generated pages, counters instead of a request log), one
// fresh cluster per gaffer cell (1 master, as many workers as shards; fresh so
// each worker's peak RSS belongs to its cell):
//
//   sharded    PAGES-page site, SHARDS shards, no politeness delay
//   one shard  the same crawl with shards: 1, on the same cluster shape
//   polite     POLITE_PAGES-page site, SHARDS shards, perHostRps 2: the
//              limits allow hosts × 2 = 100 pages/s
//   Scrapy     the polite site with the same per-host limit, and a
//              SCRAPY_PAGES-page site with no delay (crawl-scale-scrapy.ts)
//   seen set   bench/seen-set.ts at SEEN_URLS, as a child process
//
// Each gaffer cell: pages/s from the first shard's task.started to the
// resource's task.completed (completion detection included), the site's
// per-page fetch counts (duplicates fetched: pages asked for more than
// once), results stored (messages on results.<name>), etcd's database size
// before the crawl and after it (raw, and after compaction and defrag: the
// live data, which must not grow with the URLs), and each worker's VmHWM.
// Sizes come from BENCH_CRAWL_SCALE_* (config.ts); a smoke runs them small.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { NatsConnection } from 'nats';
import { LocalCluster } from '#devcluster/cluster.js';
import { waitFor } from '#devcluster/servers.js';
import { json } from '#protocol/codec.js';
import type { GafferEvent } from '#protocol/events.js';
import type { Json, Resource } from '#protocol/messages.js';
import { parseShard } from '#protocol/shards.js';
import { ClientSubject, RESULTS_STREAM, subjects } from '#protocol/subjects.js';
import { startMultiSite, type MultiSite } from '#test/fixtures/multisite.js';
import type { BenchConfig, CrawlScaleConfig } from './config.js';
import { etcdSize, type EtcdSize } from './cluster-probes.js';
import { peakRssBytes } from './procs.js';
import { runScrapyScale, type ScrapyScaleRun } from './crawl-scale-scrapy.js';
import { benchConnect, request, runId } from './wire.js';

const SEEN_SET = fileURLToPath(new URL('./seen-set.js', import.meta.url));

export class CrawlScaleError extends Error {
  override name = 'CrawlScaleError';
}

/** What the site saw during one cell. */
export interface SiteSeen {
  /** Pages of the site, and the URLs a polite crawl of it reaches (private pages on hosts that allow them included). */
  sitePages: number;
  reachable: number;
  requests: number;
  /** Pages asked for more than once, and the requests beyond each page's first. */
  fetchedTwice: number;
  duplicates: number;
  /** The most requests one host got within one whole second. */
  busiestHostSecond: number;
}

export interface GafferScaleRun extends SiteSeen {
  shards: number;
  workers: number;
  perHostRps: number | null;
  /** Sum of the shards' result pages. */
  pages: number;
  /** First shard's task.started -> the resource's task.completed. */
  seconds: number;
  pagesPerSecond: number;
  /** Messages on results.<name>: one per page. */
  stored: number;
  /** Peak resident memory (VmHWM) per worker process, and the shards each ran. */
  workerPeakRss: Array<{ worker: string; bytes: number; shards: number[] }>;
  /** etcd before the crawl, after it, and after it once compacted and defragmented. */
  etcd: { before: EtcdSize; after: EtcdSize };
  /** Parked hosts and errors summed over the shards' results. */
  errors: number;
  parked: string[];
  /** From resource.add to task.completed. */
  wallSeconds: number;
}

export interface ScrapyScaleCell extends SiteSeen {
  run?: ScrapyScaleRun;
  error?: string;
  perHostRps: number | null;
}

export interface SeenSetRun {
  urls: number;
  heapBytesPerUrl: number;
  insertsPerSecond?: number;
  lookupsPerSecond?: number;
  collisionProbability?: number;
}

export interface CrawlScaleResult {
  config: CrawlScaleConfig;
  sharded: GafferScaleRun | { error: string };
  oneShard: GafferScaleRun | { error: string };
  polite: GafferScaleRun | { error: string };
  /** hosts × perHostRps. */
  politeLimit: number;
  scrapyPolite: ScrapyScaleCell;
  scrapy: ScrapyScaleCell;
  seenSet: SeenSetRun | { error: string };
  ratios: {
    /** polite pages/s ÷ the limit. */
    politeOfLimit: number | null;
    /** gaffer ÷ Scrapy, polite and no delay. */
    vsScrapyPolite: number | null;
    vsScrapy: number | null;
    /** SHARDS shards ÷ one shard. */
    shardedVsOne: number | null;
  };
  notes: string[];
}

const r2 = (x: number): number => Math.round(x * 100) / 100;
const ratio = (a: number | undefined, b: number | undefined): number | null =>
  a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b > 0 ? r2(a / b) : null;

async function site(pages: number, hosts: number): Promise<MultiSite> {
  // No Crawl-delay, no 429s, no dead host: every host's limit is the spec's, and every page is reachable.
  return startMultiSite({ hosts, pages, crawlDelay: 0, throttled: [], unavailable: [], hang: false, record: 'counts' });
}

function seen(s: MultiSite, pages: number, reachable: number): SiteSeen {
  const c = s.counts();
  return { sitePages: pages, reachable, requests: c.requests, fetchedTwice: c.twice, duplicates: c.extra, busiestHostSecond: Math.max(0, ...c.maxPerSecond) };
}

type Ended = { kind: 'completed'; at: string; seen: number } | { kind: 'failed'; error: string };

interface GafferCell {
  pages: number;
  shards: number;
  /** null: no delay. */
  perHostRps: number | null;
  deadlineMs: number;
}

async function runGaffer(bench: BenchConfig, cfg: CrawlScaleConfig, cell: GafferCell, log: (s: string) => void): Promise<GafferScaleRun> {
  const s = await site(cell.pages, cfg.hosts);
  const reachable = s.reachableCount();
  const workers = Math.max(cfg.shards, cell.shards);
  const cluster = await LocalCluster.start({ masters: 1, workers, ttlSeconds: bench.ttlSeconds });
  let nc: NatsConnection | undefined;
  try {
    nc = await benchConnect(cluster.natsUrl, 'bench-crawl-scale');
    await cluster.ready(workers);
    const name = `cscale-${cell.shards}-${cell.perHostRps ?? 'x'}-${runId}`;
    const ofThis = (n: string): boolean => n === name || parseShard(n)?.name === name;
    let startedAt: string | undefined;
    let ended: Ended | undefined;
    const shardWorkers = new Map<string, Set<number>>();
    const on = <K extends 'task.started' | 'task.completed' | 'task.failed'>(kind: K, f: (ev: GafferEvent<K>) => void) =>
      nc!.subscribe(subjects.event(kind), {
        callback: (_e, m) => {
          const ev = json.decode(m.data) as GafferEvent<K>;
          if (ofThis(ev.name)) f(ev);
        },
      });
    const subs = [
      on('task.started', (ev) => {
        startedAt ??= ev.at;
        const idx = parseShard(ev.name)?.index ?? 0;
        shardWorkers.set(ev.worker, (shardWorkers.get(ev.worker) ?? new Set()).add(idx));
      }),
      // The resource's own completion (its name, not a shard's): every shard done and no item left in any queue.
      on('task.completed', (ev) => void (ev.name === name && (ended ??= { kind: 'completed', at: ev.at, seen: performance.now() }))),
      // A failed attempt is retried and its pages partly fetched again: not a measurement.
      on('task.failed', (ev) => void (ended ??= { kind: 'failed', error: `${ev.name}: ${ev.error}` })),
    ];
    await nc.flush();
    const before = await etcdSize(cluster.etcdEndpoints, false);
    s.resetCounts();
    const polite = cell.perHostRps !== null;
    const spec: { [k: string]: Json } = {
      kind: 'crawl', seeds: [s.seed], sameHost: false, maxDepth: 1000, maxPages: 10 * cell.pages, obeyRobots: true,
      // No delay: far above anything loopback can serve (the spec sets no maximum).
      perHostRps: cell.perHostRps ?? 1_000_000,
      perHostConcurrency: polite ? 1 : cfg.perHostConcurrency,
      // The same requests in flight in all, however many shards share them.
      concurrency: Math.max(1, Math.ceil(cfg.concurrency / cell.shards)),
      shards: cell.shards, partitionBy: 'host',
    };
    const t0 = performance.now();
    await request(nc, ClientSubject.add, { name, spec }, { gaffer: true });
    const end = await waitFor(`crawl ${name} to complete`, async () => ended, cell.deadlineMs, 50);
    for (const sub of subs) sub.unsubscribe();
    if (end.kind === 'failed') throw new CrawlScaleError(`gaffer's crawl failed: ${end.error}`);
    if (startedAt === undefined) throw new CrawlScaleError('saw task.completed but no task.started for the crawl');
    const res = await waitFor(`${name} completed in resource.get`, async () => {
      const r = (await request(nc!, ClientSubject.get, { name }, { gaffer: true })).resource as Resource;
      return r.state === 'completed' && r;
    }, 10_000);
    const sum = shardResults(res.result);
    const subject = subjects.results(name);
    const jsm = await nc.jetstreamManager({ checkAPI: false });
    const info = await jsm.streams.info(RESULTS_STREAM, { subjects_filter: subject });
    const workerPeakRss = [...cluster.workers].map(([id, ch]) => ({ worker: id, bytes: peakRssBytes(ch.pid), shards: [...(shardWorkers.get(id) ?? [])].sort((a, b) => a - b) }));
    const after = await etcdSize(cluster.etcdEndpoints, true);
    const seconds = (Date.parse(end.at) - Date.parse(startedAt)) / 1000;
    const run: GafferScaleRun = {
      shards: cell.shards,
      workers,
      perHostRps: cell.perHostRps,
      pages: sum.pages,
      seconds,
      pagesPerSecond: r2(sum.pages / seconds),
      stored: info.state.subjects?.[subject] ?? 0,
      workerPeakRss,
      etcd: { before, after },
      errors: sum.errors,
      parked: sum.parked,
      wallSeconds: r2((end.seen - t0) / 1000),
      ...seen(s, cell.pages, reachable),
    };
    log(`crawl-scale: gaffer ${cell.shards} shard(s)${polite ? ` at ${cell.perHostRps}/s per host` : ''}: ${run.pages} pages in ${run.seconds} s = ${run.pagesPerSecond} pages/s; ${run.stored} stored, ${run.duplicates} duplicates, ${run.errors} errors, etcd ${kib(before.dbSize)} -> ${kib(after.dbSize)} KiB (${kib(after.compacted?.dbSize ?? NaN)} compacted), peak RSS ${workerPeakRss.map((w) => `${w.worker} ${mib(w.bytes)} MiB`).join(', ')}`);
    return run;
  } finally {
    await nc?.close().catch(() => undefined);
    await cluster.stop(bench.keepLogs);
    await s.close();
  }
}

const kib = (b: number): number => Math.round(b / 1024);
const mib = (b: number): number => Math.round(b / 1048576);

/** shardResults sums what every shard's result says (a sharded resource's result is { shards: [...] }; an unsharded one's is the crawl's own). */
export function shardResults(result: Json | undefined): { pages: number; errors: number; parked: string[] } {
  const list = result && typeof result === 'object' && !Array.isArray(result) && Array.isArray(result.shards) ? result.shards : [result];
  let pages = 0;
  let errors = 0;
  const parked: string[] = [];
  let any = false;
  for (const r of list) {
    if (!r || typeof r !== 'object' || Array.isArray(r)) continue;
    const n = typeof r.pages === 'number' ? r.pages : typeof r.fetched === 'number' ? r.fetched : undefined;
    if (n === undefined) continue;
    any = true;
    pages += n;
    errors += typeof r.errors === 'number' ? r.errors : 0;
    if (Array.isArray(r.parked)) for (const h of r.parked) if (typeof h === 'string') parked.push(h);
  }
  if (!any) throw new CrawlScaleError(`the crawl's result has no page count: ${JSON.stringify(result).slice(0, 300)}`);
  return { pages, errors, parked };
}

async function runScrapy(bench: BenchConfig, cfg: CrawlScaleConfig, pages: number, perHostRps: number | null, log: (s: string) => void): Promise<ScrapyScaleCell> {
  const s = await site(pages, cfg.hosts);
  try {
    const reachable = s.reachableCount();
    s.resetCounts();
    // Twice the time the polite limit needs, or 50 pages/s without one (a quarter of Scrapy's rate here), plus a minute of slack.
    const deadlineMs = 60_000 + (perHostRps ? (2 * pages * 1000) / (cfg.hosts * perHostRps) : pages * 20);
    const run = await runScrapyScale({
      python: bench.crawl.python, seed: s.seed, concurrency: cfg.concurrency, perHostConcurrency: cfg.perHostConcurrency,
      perHostRps: perHostRps ?? 0, deadlineMs, keepLogs: bench.keepLogs,
    });
    const side = seen(s, pages, reachable);
    if ('error' in run) {
      log(`crawl-scale: Scrapy${perHostRps ? ` at ${perHostRps}/s per host` : ''}: ${run.error.split('\n')[0]}`);
      return { ...side, error: run.error, perHostRps };
    }
    log(`crawl-scale: Scrapy ${run.version}${perHostRps ? ` at ${perHostRps}/s per host` : ''}: ${run.pages} pages in ${run.seconds} s = ${run.pagesPerSecond} pages/s (${side.duplicates} duplicates, finish ${run.finishReason}, wall ${run.wallSeconds} s)`);
    return { ...side, run, perHostRps };
  } finally {
    await s.close();
  }
}

/** seenSet runs bench/seen-set.ts in its own process (its heap figure needs a process of its own). */
function seenSet(urls: number): SeenSetRun | { error: string } {
  const p = spawnSync(process.execPath, [SEEN_SET, String(urls)], { encoding: 'utf8', timeout: 300_000 });
  try {
    const r = JSON.parse(p.stdout) as SeenSetRun;
    if (typeof r.heapBytesPerUrl !== 'number') throw new Error('no heapBytesPerUrl');
    return r;
  } catch (err) {
    return { error: `seen-set.js exited ${p.status}: ${(err as Error).message}; ${(p.stderr || p.stdout || '').slice(-300)}` };
  }
}

const failed = (err: unknown): { error: string } => ({ error: (err as Error).message ?? String(err) });

export async function crawlScale(bench: BenchConfig, log: (s: string) => void): Promise<CrawlScaleResult> {
  const cfg = bench.crawlScale;
  const limit = cfg.hosts * cfg.politeRps;
  // Deadlines: 100 pages/s without a delay (a quarter of what one shard does here; 200k pages: 34 min), half the limit with one, plus a minute to start.
  const fast = (pages: number): number => 60_000 + pages * 10;
  const slow = (pages: number): number => 60_000 + (2 * pages * 1000) / limit;
  // Each cell's failure is recorded and the others still run: the part takes about 25 minutes.
  const sharded = await runGaffer(bench, cfg, { pages: cfg.pages, shards: cfg.shards, perHostRps: null, deadlineMs: fast(cfg.pages) }, log).catch(failed);
  const oneShard = await runGaffer(bench, cfg, { pages: cfg.onePages, shards: 1, perHostRps: null, deadlineMs: fast(cfg.onePages) }, log).catch(failed);
  const polite = await runGaffer(bench, cfg, { pages: cfg.politePages, shards: cfg.shards, perHostRps: cfg.politeRps, deadlineMs: slow(cfg.politePages) }, log).catch(failed);
  const scrapyPolite = await runScrapy(bench, cfg, cfg.politePages, cfg.politeRps, log);
  const scrapy = await runScrapy(bench, cfg, cfg.scrapyPages, null, log);
  const seen = seenSet(cfg.seenUrls);
  if (!('error' in seen)) log(`crawl-scale: seen set at ${seen.urls} URLs: ${seen.heapBytesPerUrl} heap bytes per URL`);

  const notes: string[] = [];
  const check = (who: string, r: GafferScaleRun | { error: string }): void => {
    if ('error' in r) return void notes.push(`${who}: ${r.error}`);
    if (r.pages !== r.reachable) notes.push(`${who}: ${r.pages} pages for ${r.reachable} reachable`);
    if (r.stored !== r.pages) notes.push(`${who}: ${r.stored} results stored for ${r.pages} pages`);
    if (r.duplicates) notes.push(`${who}: ${r.fetchedTwice} pages fetched more than once (${r.duplicates} extra requests)`);
    if (r.parked.length) notes.push(`${who}: parked ${r.parked.join(' ')}`);
  };
  check(`${cfg.shards} shards`, sharded);
  check('one shard', oneShard);
  check('polite', polite);
  if (cfg.onePages !== cfg.pages) notes.push(`the one-shard crawl ran on a ${cfg.onePages}-page site, the sharded one on ${cfg.pages}`);
  if (cfg.scrapyPages !== cfg.pages) notes.push(`Scrapy's no-delay crawl ran on a ${cfg.scrapyPages}-page site (gaffer's on ${cfg.pages}); pages/s compared`);
  notes.push(`the polite crawls ran on a ${cfg.politePages}-page site: at the ${limit} pages/s the limits allow, ${cfg.pages} pages would take ${Math.round(cfg.pages / limit / 60)} min`);
  for (const [who, c] of [['Scrapy polite', scrapyPolite], ['Scrapy', scrapy]] as const) {
    if (c.error) notes.push(`${who}: ${c.error.split('\n')[0]}`);
    // Scrapy fetches the seed twice (its start request skips the duplicate filter).
    else if (c.run && c.run.pages !== c.reachable + 1) notes.push(`${who}: ${c.run.pages} pages for ${c.reachable} reachable (+1 for the seed it fetches twice)`);
  }
  const g = (r: GafferScaleRun | { error: string }): number | undefined => ('error' in r ? undefined : r.pagesPerSecond);
  return {
    config: cfg,
    sharded,
    oneShard,
    polite,
    politeLimit: limit,
    scrapyPolite,
    scrapy,
    seenSet: seen,
    ratios: {
      politeOfLimit: ratio(g(polite), limit),
      vsScrapyPolite: ratio(g(polite), scrapyPolite.run?.pagesPerSecond),
      vsScrapy: ratio(g(sharded), scrapy.run?.pagesPerSecond),
      shardedVsOne: ratio(g(sharded), g(oneShard)),
    },
    notes,
  };
}
