// Crawl: gaffer's built-in `crawl` task kind beside Scrapy, on one generated
// site on loopback (test/fixtures/site.ts, no never-answering page, robots.txt
// disallowing /private/), under the same rules: same host only, robots.txt
// obeyed, depth 10, 16 requests at a time, no politeness delay.
//   gaffer: one master, one worker, every page emitted into GAFFER_RESULTS;
//     timed by the task's own events (task.started at -> task.completed at).
//   Scrapy: a plain spider (crawl_spider.py), no item pipeline, breadth first
//     like gaffer; timed by its own stats (elapsed_time_seconds).
// Both must find the same pages; a difference is noted, not fatal. Scrapy
// missing or failing is recorded in `scrapy.error` and gaffer's rate stands.

import { performance } from 'node:perf_hooks';
import type { NatsConnection } from 'nats';
import { LocalCluster } from '#devcluster/cluster.js';
import { waitFor } from '#devcluster/servers.js';
import { json } from '#protocol/codec.js';
import type { GafferEvent } from '#protocol/events.js';
import type { Resource } from '#protocol/messages.js';
import { ClientSubject, RESULTS_STREAM, subjects } from '#protocol/subjects.js';
import { readResults } from '#platform/nats/results.js';
import { startSite, type Site } from '#test/fixtures/site.js';
import { expect } from '#test/fixtures/crawl-expect.js';
import type { BenchConfig } from './config.js';
import { runScrapy, type ScrapyRun } from './scrapy.js';
import { benchConnect, request, runId } from './wire.js';


export const RULES = { sameHost: true, obeyRobots: true, maxDepth: 10, concurrency: 16, delaySeconds: 0 } as const;

export class CrawlBenchError extends Error {
  override name = 'CrawlBenchError';
}

/** PageSet compares what one crawler found with what the site has to find. */
export interface PageSet {
  /** Distinct pages found (URL path and query, fragment dropped). */
  found: number;
  missing: number;
  extra: number;
  /** A few of the missing (-) and extra (+) paths. */
  examples: string[];
}

/** What the site saw while one crawler ran. */
export interface SiteSide {
  requests: number;
  /** Paths asked for more than once (robots.txt excluded), and a few of them. */
  fetchedTwice: number;
  twice: string[];
  /** Requests under /private/, which robots.txt disallows: must be 0. */
  privateRequests: number;
}

export interface GafferCrawl extends SiteSide {
  /** The resource's result: pages emitted, pages failed, URLs skipped. */
  pages: number;
  errors: number;
  skipped: number;
  /** task.started at -> task.completed at. */
  seconds: number;
  pagesPerSecond: number;
  /** Messages on results.<name> in GAFFER_RESULTS: one per page. */
  stored: number;
  set: PageSet;
  /** From sending resource.add to receiving task.completed (placement and start-up included). */
  wallSeconds: number;
}

export interface ScrapyCrawl extends SiteSide, ScrapyRun {
  robotsForbidden: number;
  set: PageSet;
}

export interface CrawlBenchResult {
  site: { pages: number; expected: number };
  rules: typeof RULES;
  gaffer: GafferCrawl;
  scrapy: ScrapyCrawl | { error: string };
  /** gaffer pages/s ÷ Scrapy pages/s. */
  ratio: number | null;
  /** Both found the same pages, and those are the site's. */
  samePages: boolean | null;
  notes: string[];
}

const r2 = (x: number): number => Math.round(x * 100) / 100;

function pathOf(url: string): string {
  const u = new URL(url);
  return u.pathname + u.search;
}

function pageSet(want: Set<string>, urls: Iterable<string>): { set: PageSet; paths: Set<string> } {
  const paths = new Set<string>();
  for (const u of urls) paths.add(pathOf(u));
  const missing = [...want].filter((p) => !paths.has(p));
  const extra = [...paths].filter((p) => !want.has(p));
  return {
    paths,
    set: {
      found: paths.size,
      missing: missing.length,
      extra: extra.length,
      examples: [...missing.slice(0, 5).map((p) => `-${p}`), ...extra.slice(0, 5).map((p) => `+${p}`)],
    },
  };
}

/** siteSide reads what the site saw since the last reset, then resets it for the next crawler. */
function siteSide(site: Site): SiteSide {
  const out: SiteSide = { requests: site.log.length, fetchedTwice: 0, twice: [], privateRequests: 0 };
  for (const [path, n] of site.hits) {
    if (path !== '/robots.txt' && n > 1 && ++out.fetchedTwice <= 5) out.twice.push(`${path} ×${n}`);
    if (path.startsWith('/private/')) out.privateRequests += n;
  }
  site.hits.clear();
  site.log.length = 0;
  return out;
}

type Ended = { kind: 'completed'; at: string; seen: number } | { kind: 'failed'; error: string };

async function runGaffer(cfg: BenchConfig, site: Site, want: Set<string>, log: (s: string) => void): Promise<{ run: GafferCrawl; paths: Set<string> }> {
  const cluster = await LocalCluster.start({ masters: 1, workers: 1, ttlSeconds: cfg.ttlSeconds });
  let nc: NatsConnection | undefined;
  try {
    nc = await benchConnect(cluster.natsUrl, 'bench-crawl');
    await cluster.ready(1);
    const name = `crawl-${runId}`;
    let startedAt: string | undefined;
    let ended: Ended | undefined;
    const on = <K extends 'task.started' | 'task.completed' | 'task.failed'>(kind: K, f: (ev: GafferEvent<K>) => void) =>
      nc!.subscribe(subjects.event(kind), {
        callback: (_e, m) => {
          const ev = json.decode(m.data) as GafferEvent<K>;
          if (ev.name === name) f(ev);
        },
      });
    const subs = [
      on('task.started', (ev) => void (startedAt ??= ev.at)),
      on('task.completed', (ev) => void (ended ??= { kind: 'completed', at: ev.at, seen: performance.now() })),
      // A failed attempt would be retried, and its pages partly fetched again: not a measurement.
      on('task.failed', (ev) => void (ended ??= { kind: 'failed', error: ev.error })),
    ];
    // The events must be subscribed on the server before the add, or a fast crawl's could be missed.
    await nc.flush();
    const spec = {
      kind: 'crawl', seeds: [site.seed], maxPages: 100_000, maxDepth: RULES.maxDepth, sameHost: RULES.sameHost,
      // No delay: far above anything loopback can serve (the spec sets no maximum).
      perHostRps: 1_000_000, concurrency: RULES.concurrency, obeyRobots: RULES.obeyRobots,
      // As many at once to the one host as Scrapy's CONCURRENT_REQUESTS_PER_DOMAIN.
      perHostConcurrency: RULES.concurrency,
    };
    const t0 = performance.now();
    await request(nc, ClientSubject.add, { name, spec }, { gaffer: true });
    const end = await waitFor(`crawl ${name} to complete`, async () => ended, cfg.crawl.deadlineMs, 20);
    for (const s of subs) s.unsubscribe();
    if (end.kind === 'failed') throw new CrawlBenchError(`gaffer's crawl failed: ${end.error}`);
    if (startedAt === undefined) throw new CrawlBenchError('saw task.completed but no task.started for the crawl');
    const res = await waitFor(`${name} completed in resource.get`, async () => {
      const r = (await request(nc!, ClientSubject.get, { name }, { gaffer: true })).resource as Resource;
      return r.state === 'completed' && r;
    }, 10_000);
    const result = res.result as { pages?: unknown; errors?: unknown; skipped?: unknown } | undefined;
    if (typeof result?.pages !== 'number') throw new CrawlBenchError(`the crawl's result has no page count: ${JSON.stringify(res.result)}`);

    const subject = subjects.results(name);
    const jsm = await nc.jetstreamManager({ checkAPI: false });
    const info = await jsm.streams.info(RESULTS_STREAM, { subjects_filter: subject });
    const urls: string[] = [];
    for await (const r of readResults(nc, name)) urls.push((r.item as { url: string }).url);
    const { set, paths } = pageSet(want, urls);

    const seconds = (Date.parse(end.at) - Date.parse(startedAt)) / 1000;
    const run: GafferCrawl = {
      pages: result.pages,
      errors: Number(result.errors ?? 0),
      skipped: Number(result.skipped ?? 0),
      seconds,
      pagesPerSecond: r2(result.pages / seconds),
      stored: info.state.subjects?.[subject] ?? 0,
      set,
      wallSeconds: r2((end.seen - t0) / 1000),
      ...siteSide(site),
    };
    log(`crawl: gaffer ${run.pages} pages in ${run.seconds} s = ${run.pagesPerSecond} pages/s (${run.stored} stored, ${run.errors} errors, ${run.requests} requests, wall ${run.wallSeconds} s)`);
    return { run, paths };
  } finally {
    await nc?.close().catch(() => undefined);
    await cluster.stop(cfg.keepLogs);
  }
}

async function scrapyCrawl(cfg: BenchConfig, site: Site, want: Set<string>, log: (s: string) => void): Promise<{ run: ScrapyCrawl; paths: Set<string> } | { error: string }> {
  const r = await runScrapy({
    python: cfg.crawl.python,
    seed: site.seed,
    settings: {
      ROBOTSTXT_OBEY: RULES.obeyRobots ? 'True' : 'False',
      CONCURRENT_REQUESTS: RULES.concurrency,
      CONCURRENT_REQUESTS_PER_DOMAIN: RULES.concurrency,
      DOWNLOAD_DELAY: RULES.delaySeconds,
      DEPTH_LIMIT: RULES.maxDepth,
    },
    deadlineMs: cfg.crawl.deadlineMs,
    keepLogs: cfg.keepLogs,
  });
  if ('error' in r) return r;
  const { set: found, paths } = pageSet(want, r.found);
  const run: ScrapyCrawl = { ...r.run, robotsForbidden: r.stat('robotstxt/forbidden'), set: found, ...siteSide(site) };
  log(`crawl: Scrapy ${run.version} ${run.pages} pages in ${run.seconds} s = ${run.pagesPerSecond} pages/s (${run.responses} responses, ${run.requests} requests, finish ${run.finishReason}, wall ${run.wallSeconds} s)`);
  return { run, paths };
}

export async function crawl(cfg: BenchConfig, log: (s: string) => void): Promise<CrawlBenchResult> {
  const site = await startSite({ pages: cfg.crawl.pages, bad: false, robots: true });
  try {
    const want = expect(site, { robots: RULES.obeyRobots, maxDepth: RULES.maxDepth }).emitted;
    siteSide(site);
    const g = await runGaffer(cfg, site, want, log);
    const s = await scrapyCrawl(cfg, site, want, log);
    const notes: string[] = [];
    const check = (who: string, r: GafferCrawl | ScrapyCrawl): void => {
      if (r.set.missing || r.set.extra) notes.push(`${who} found ${r.set.found} pages, ${r.set.missing} missing and ${r.set.extra} not on the site's list (${r.set.examples.join(' ')})`);
      if (r.pages !== r.set.found) notes.push(`${who} reports ${r.pages} pages but its output holds ${r.set.found} distinct ones${r.twice.length ? ` (asked for more than once: ${r.twice.join(', ')})` : ''}`);
      if (r.privateRequests) notes.push(`${who} asked for ${r.privateRequests} pages under /private/, which robots.txt disallows`);
    };
    check('gaffer', g.run);
    if (g.run.stored !== g.run.pages) notes.push(`gaffer stored ${g.run.stored} results for ${g.run.pages} pages`);
    let samePages: boolean | null = null;
    if ('run' in s) {
      check('Scrapy', s.run);
      const a = g.paths;
      const b = s.paths;
      samePages = a.size === b.size && [...a].every((p) => b.has(p)) && g.run.set.missing === 0 && g.run.set.extra === 0;
      if (!samePages) notes.push(`gaffer and Scrapy did not find the same pages: ${[...a].filter((p) => !b.has(p)).length} only gaffer's, ${[...b].filter((p) => !a.has(p)).length} only Scrapy's`);
    }
    for (const n of notes) log(`crawl: NOTE ${n}`);
    const sp = 'run' in s ? s.run.pages / s.run.seconds : undefined;
    const gp = g.run.pages / g.run.seconds;
    return {
      site: { pages: cfg.crawl.pages, expected: want.size },
      rules: RULES,
      gaffer: g.run,
      scrapy: 'run' in s ? s.run : s,
      ratio: sp && Number.isFinite(sp) && Number.isFinite(gp) ? r2(gp / sp) : null,
      samePages,
      notes,
    };
  } finally {
    await site.close();
  }
}
