// The built-in `crawl` task kind: a polite, resumable breadth-first crawler.
//
// Per page fetched, whatever its status (404 and 500 included), one item
// `{ url, status, depth, title, links, fields, fetchedAt }` is emitted with
// the page's canonical final URL as its id, so a page fetched again after a
// resume is stored once. A redirect emits only its final page. Pages that
// fail outright (network error, timeout, more than 10 redirects) emit
// nothing: they count in `errors` and are logged. Links are followed from 2xx
// pages only; an error page's links are reported in its item but not crawled.
//
// Result: `{ pages, errors, skipped, parked }` (and `notModified` with `conditional`: recrawl.ts). `skipped` counts distinct URLs
// found but not fetched (robots.txt, sameHost, include/exclude, beyond
// maxDepth, left over at maxPages, on a parked host). It is exact within an
// attempt (up to seen-set hash collisions); after a resume, a URL skipped
// both before and after the checkpoint is counted twice, since the
// checkpoint keeps the count but not the URLs. `parked` lists the hosts
// (host:port) given up after `parkAfter` network errors or timeouts in a row.
//
// Scheduling is per host (host-queues.ts): the next URL comes from whichever
// host may be fetched soonest under politeness.ts (perHostRps, robots.txt
// Crawl-delay, perHostConcurrency, Retry-After). A page answered 429 or 503
// blocks its host (host-health.ts) and is fetched again after the wait, up
// to maxRetries times; after that its answer is emitted like any other.
//
// maxPages bounds pages + errors. Checkpoints go out every 50 finished
// pages or 5 s (checkpoint-writer.ts), and once more when the signal aborts;
// resume refetches exactly the pages that were queued or in flight then.

import { setMaxListeners } from 'node:events';
import type { Json, TaskContext, TaskKind } from '#kinds/api.js';
import { systemClock, type Clock } from '#platform/clock.js';
import { isThrottle } from './backoff.js';
import { decodeState } from './checkpoint.js';
import { CheckpointWriter } from './checkpoint-writer.js';
import { extractPage } from './extract.js';
import { Fetcher, FetchError } from './fetch.js';
import { canonicalize, Frontier, type Entry } from './frontier.js';
import { HostHealth } from './host-health.js';
import { hostOf } from './host-queues.js';
import { buildItem } from './item.js';
import { Politeness, type Release } from './politeness.js';
import { RobotsCache } from './robots.js';
import { readSitemaps } from './sitemaps.js';
import { parseSpec, type CrawlSpec } from './spec.js';
import { conditionalHeaders, PageMemory } from './page-memory.js';
import { SeenSet } from './seen-set.js';
import { ShardedCrawl } from './sharded.js';
import { UrlFilter } from './url-filter.js';
import { Waker } from './waker.js';

/** How long an aborted crawl waits for in-flight emits before its last checkpoint. */
const ABORT_GRACE_MS = 1000;

export interface CrawlResult {
  [k: string]: Json;
  pages: number;
  errors: number;
  skipped: number;
  parked: string[];
}

class Crawl {
  private readonly spec: CrawlSpec;
  private readonly clock: Clock = systemClock;
  private readonly politeness: Politeness;
  private readonly health: HostHealth;
  private readonly frontier: Frontier;
  private readonly fetcher: Fetcher;
  private readonly robots: RobotsCache;
  private readonly filter: UrlFilter;
  private readonly stop = new AbortController();
  private readonly seedOrigins = new Set<string>();
  private readonly skippedUrls = new SeenSet();
  /** Page fetches, bounded by concurrency and maxPages. */
  private readonly running = new Set<Promise<void>>();
  /** Host setups (robots.txt, sitemaps): they only prepare pages. */
  private readonly side = new Set<Promise<void>>();
  private pages = 0;
  private errors = 0;
  private skipped = 0;
  /** With `conditional`: what the last run saw of each page (recrawl.ts). */
  private readonly memory: PageMemory | undefined;
  private fatal: Error | undefined;
  /** Wakes the loop when a host may have become ready (a slot released, a setup done). */
  private readonly waker: Waker;
  private closed = false;
  private readonly checkpoints: CheckpointWriter;

  constructor(private readonly ctx: TaskContext) {
    this.waker = new Waker(this.clock, this.stop.signal);
    // Everything that can reject the spec or the checkpoint runs before any request.
    this.spec = parseSpec(ctx.spec);
    const { spec } = this;
    this.memory = PageMemory.of(spec, ctx);
    const seeds = spec.seeds.map((s) => canonicalize(s)!);
    for (const s of seeds) this.seedOrigins.add(new URL(s).origin);
    this.politeness = new Politeness({ rps: spec.perHostRps, concurrency: spec.perHostConcurrency, clock: this.clock });
    this.health = new HostHealth(spec, this.politeness, this.clock);
    const setup = { setup: spec.obeyRobots || spec.sitemaps };
    if (ctx.checkpointed !== undefined) {
      const st = decodeState(ctx.checkpointed);
      this.frontier = new Frontier(this.politeness, setup, st.visited, st.frontier);
      this.pages = st.pages;
      this.errors = st.errors;
      this.skipped = st.skipped;
      this.memory?.restore(st.notModified);
      this.health.restore(st.parked ?? []);
    } else {
      this.frontier = new Frontier(this.politeness, setup, [], seeds.map((url) => ({ url, depth: 0 })));
    }
    this.fetcher = new Fetcher({
      politeness: this.politeness,
      timeoutMs: spec.timeoutMs,
      connections: spec.perHostConcurrency + 1,
    });
    this.robots = new RobotsCache(this.fetcher, this.stop.signal, ctx.log, {
      throttled: (host, retryAfter, attempt) => {
        this.health.throttled(host, retryAfter);
        return attempt <= spec.maxRetries;
      },
      failed: (host) => !this.health.failed(host),
      answered: (host) => this.health.ok(host),
    });
    this.filter = new UrlFilter(spec, this.health, this.robots);
    this.checkpoints = new CheckpointWriter(ctx, this.frontier, () => this.counters(), (err) => this.fail(err));
    this.politeness.onChange = (host) => {
      this.frontier.queues.wake(host);
      this.waker.nudge();
    };
    this.health.onPark = (host) => {
      ctx.log.warn({ host, after: spec.parkAfter }, 'crawl: host parked after failing repeatedly; crawling on without it');
      for (const e of this.frontier.park(host)) this.skip(e.url);
    };
    for (const h of this.health.parked) this.frontier.park(h);
    this.frontier.queues.onNewHost = (host, url) => this.setup(host, new URL(url).origin);
    // Every in-flight request and politeness wait listens on it (and removes its listener).
    setMaxListeners(0, this.stop.signal);
  }

  private counters(): CrawlResult {
    return { pages: this.pages, errors: this.errors, skipped: this.skipped, parked: [...this.health.parked], ...this.memory?.counters() };
  }

  async run(): Promise<CrawlResult> {
    const onAbort = (): void => this.stop.abort(this.ctx.signal.reason);
    if (this.ctx.signal.aborted) onAbort();
    this.ctx.signal.addEventListener('abort', onAbort, { once: true });
    const timer = setInterval(() => this.maybeCheckpoint(), 1000);
    timer.unref();
    try {
      this.frontier.start();
      const { concurrency, maxPages } = this.spec;
      while (!this.stop.signal.aborted) {
        let nextAt: number | undefined;
        while (this.running.size < concurrency && this.pages + this.errors + (this.memory?.notModified ?? 0) + this.running.size < maxPages) {
          const t = this.frontier.take(this.clock.now());
          if (t === undefined) break;
          if (!('entry' in t)) {
            nextAt = t.at;
            break;
          }
          const p: Promise<void> = this.page(t.entry, t.release)
            .catch((err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))))
            .finally(() => this.running.delete(p));
          this.running.add(p);
        }
        if (this.running.size === 0 && this.side.size === 0) {
          if (this.frontier.queued === 0 || this.pages + this.errors + (this.memory?.notModified ?? 0) >= maxPages) break;
          // Nothing runs that could free a host: waiting would hang for good.
          if (nextAt === undefined) throw new Error(`crawl: ${this.frontier.queued} URLs queued but no host can be scheduled`);
        }
        await this.waker.wait(nextAt, [...this.running, ...this.side]);
      }
      if (this.fatal) throw this.fatal;
      if (this.ctx.signal.aborted) {
        await Promise.race([Promise.allSettled(this.running), delay(ABORT_GRACE_MS)]);
        await this.checkpoints.writing;
        if (this.fatal) throw this.fatal;
        await this.checkpoints.write();
        if (this.fatal) throw this.fatal;
        return this.counters();
      }
      // Done: what is still queued was cut off by maxPages.
      for (const e of this.frontier.drain()) this.skip(e.url);
      this.report();
      return this.counters();
    } finally {
      this.closed = true;
      clearInterval(timer);
      this.ctx.signal.removeEventListener('abort', onAbort);
      this.stop.abort(new Error('crawl finished'));
      await this.fetcher.close().catch(() => {});
    }
  }


  private fail(err: Error): void {
    if (this.fatal) return;
    this.fatal = err;
    this.stop.abort(err);
  }

  private skip(url: string): void {
    if (this.skippedUrls.add(url)) this.skipped++;
  }

  /** setup reads a new host's robots.txt (and a seed host's sitemaps) before its pages are scheduled. */
  private setup(host: string, origin: string): void {
    const p: Promise<void> = this.setupHost(host, origin)
      .catch((err: unknown) => {
        if (!this.stop.signal.aborted) this.fail(err instanceof Error ? err : new Error(String(err)));
      })
      .finally(() => this.side.delete(p));
    this.side.add(p);
  }

  private async setupHost(host: string, origin: string): Promise<void> {
    const { obeyRobots, sitemaps } = this.spec;
    await this.robots.load(origin);
    const info = this.robots.info(origin);
    if (obeyRobots && info.crawlDelay !== undefined) this.politeness.setCrawlDelay(host, info.crawlDelay);
    this.frontier.queues.ready(host);
    this.waker.nudge();
    if (sitemaps && this.seedOrigins.has(origin) && !this.health.isParked(host)) {
      const roots = info.sitemaps.length > 0 ? info.sitemaps : [`${origin}/sitemap.xml`];
      await readSitemaps(this.fetcher, roots, this.stop.signal, this.ctx.log, (urls) => {
        this.discover(urls, 0);
        this.waker.nudge();
      });
    }
  }

  private discover(links: readonly string[], depth: number): void {
    for (const url of links) {
      if (this.frontier.has(url)) continue;
      if (depth > this.spec.maxDepth || this.filter.refused(url)) {
        this.skip(url);
      } else if (this.frontier.push(url, depth) && this.skippedUrls.delete(url)) {
        // First seen beyond maxDepth, now found closer to a seed.
        this.skipped--;
      }
    }
  }

  private async follow(target: string): Promise<'follow' | 'seen' | 'refused'> {
    if (this.frontier.has(target)) return 'seen';
    if (this.filter.refused(target) || (this.spec.obeyRobots && !(await this.robots.allowed(target)))) {
      this.skip(target);
      return 'refused';
    }
    return this.frontier.claim(target) ? 'follow' : 'seen';
  }

  /** page fetches one frontier entry with the slot the frontier took for it; it never rejects (failures are counted, or made fatal via fail()). */
  private async page(e: Entry, release: Release): Promise<void> {
    const signal = this.stop.signal;
    let held: Release | undefined = release;
    try {
      if (this.spec.obeyRobots) {
        // Loading robots.txt (another scheme of this host) needs a slot of
        // its own: holding this one meanwhile could starve it.
        if (this.robots.allowedNow(e.url) === undefined) {
          held();
          held = undefined;
        }
        if (!(await this.robots.allowed(e.url))) {
          held?.();
          this.skip(e.url);
          this.frontier.finish(e.url);
          return this.finished();
        }
      }
      const asked = await this.memory?.recall(e.url);
      const slot = held;
      held = undefined;
      const out = await this.fetcher.page(e.url, signal, (t) => this.follow(t), slot, conditionalHeaders(asked));
      if (out.kind === 'stopped') {
        this.frontier.finish(e.url, out.hops);
        return this.finished();
      }
      const { res, hops } = out;
      if (isThrottle(res.status)) {
        this.health.throttled(hostOf(res.url), res.retryAfter);
        if ((e.retries ?? 0) < this.spec.maxRetries) {
          if (!this.frontier.retry(e.url, hops, res.url)) this.skip(res.url);
          this.report();
          return;
        }
      } else {
        this.health.ok(hostOf(res.url));
      }
      // Unchanged since the last run (a 304): not emitted again; its links are followed from memory.
      const kept = hops.length === 0 ? this.memory?.unchanged(res.status, asked) : undefined;
      if (kept) {
        this.discover(kept.links, e.depth + 1);
        this.frontier.finish(e.url);
        return this.finished();
      }
      const ex = extractPage(res, this.spec.extract);
      if (res.status >= 200 && res.status < 300) this.discover(ex.links, e.depth + 1);
      const item = buildItem(res.url, res.status, e.depth, ex, new Date().toISOString());
      if (signal.aborted) return;
      try {
        await this.ctx.emit(item, { id: res.url });
      } catch (err) {
        if (this.ctx.signal.aborted) return;
        return this.fail(new Error(`crawl: emit failed for ${res.url}: ${(err as Error).message}`, { cause: err }));
      }
      if (hops.length === 0) await this.memory?.remember(res.url, res, ex.links);
      this.frontier.finish(e.url, [...hops, res.url]);
      this.pages++;
    } catch (err) {
      held?.();
      // Aborted: the entry stays in flight, so the last checkpoint lists it for the resume.
      if (signal.aborted) return;
      this.errors++;
      this.frontier.finish(e.url);
      const msg = err instanceof FetchError ? err.message : `${e.url}: ${(err as Error).message}`;
      this.ctx.log.warn({ url: e.url, err: msg }, 'crawl: page failed');
      if (err instanceof FetchError && err.host !== undefined) this.health.failed(err.host);
    }
    this.finished();
  }

  private finished(): void {
    if (this.closed) return;
    this.checkpoints.finished();
    this.report();
    this.maybeCheckpoint();
  }

  private report(): void {
    this.ctx.progress({ fetched: this.pages, queued: this.frontier.queued, errors: this.errors, parked: [...this.health.parked], ...this.memory?.counters() });
  }

  private maybeCheckpoint(): void {
    if (!this.stop.signal.aborted && !this.closed) this.checkpoints.maybe();
  }
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

export const crawl: TaskKind = {
  // async, so a bad spec rejects the returned promise like any other failure.
  run: async (ctx: TaskContext) => {
    const spec = parseSpec(ctx.spec);
    return spec.shards === undefined ? new Crawl(ctx).run() : new ShardedCrawl(ctx, spec).run();
  },
};
