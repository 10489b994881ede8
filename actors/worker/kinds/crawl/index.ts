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
// Result: `{ pages, errors, skipped }`. `skipped` counts distinct URLs found
// but not fetched (robots.txt, sameHost, include/exclude, beyond maxDepth,
// left over at maxPages). It is exact within an attempt; after a resume, a
// URL skipped both before and after the checkpoint is counted twice, since
// the checkpoint keeps the count but not the URLs.
//
// maxPages bounds pages + errors. Checkpoints go out every 50 finished pages
// or 5 s, and once more when the signal aborts; resume refetches exactly the
// pages that were queued or in flight then.

import { setMaxListeners } from 'node:events';
import { MAX_STATE_BYTES, type Json, type TaskContext, type TaskKind } from '#kinds/api.js';
import { decodeState, encodeState, stateBytes } from './checkpoint.js';
import { extract, type Extracted } from './extract.js';
import { Fetcher, FetchError, isHtml } from './fetch.js';
import { canonicalize, Frontier, type Entry } from './frontier.js';
import { buildItem } from './item.js';
import { RateLimiter } from './politeness.js';
import { RobotsCache } from './robots.js';
import { parseSpec, type CrawlSpec } from './spec.js';

const CHECKPOINT_EVERY_PAGES = 50;
const CHECKPOINT_EVERY_MS = 5000;
/** How long an aborted crawl waits for in-flight emits before its last checkpoint. */
const ABORT_GRACE_MS = 1000;

export interface CrawlResult {
  [k: string]: Json;
  pages: number;
  errors: number;
  skipped: number;
}

class Crawl {
  private readonly spec: CrawlSpec;
  private readonly frontier: Frontier;
  private readonly fetcher: Fetcher;
  private readonly robots: RobotsCache;
  private readonly stop = new AbortController();
  private readonly seedHosts = new Set<string>();
  private readonly skippedUrls = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  private pages = 0;
  private errors = 0;
  private skipped = 0;
  private fatal: Error | undefined;
  /** Settles when the crawl must stop (abort or fatal error), to wake the loop even while emits are pending. */
  private readonly stopped = new Promise<void>((resolve) =>
    this.stop.signal.addEventListener('abort', () => resolve(), { once: true }),
  );
  private closed = false;
  private checkpointing: Promise<void> | undefined;
  private finishedSinceCheckpoint = 0;
  private lastCheckpointAt = Date.now();
  private oversizeWarned = false;

  constructor(private readonly ctx: TaskContext) {
    // Everything that can reject the spec or the checkpoint runs before any request.
    this.spec = parseSpec(ctx.spec);
    const seeds = this.spec.seeds.map((s) => canonicalize(s)!);
    for (const s of seeds) this.seedHosts.add(new URL(s).host);
    if (ctx.checkpointed !== undefined) {
      const st = decodeState(ctx.checkpointed);
      this.frontier = new Frontier(st.visited, st.frontier);
      this.pages = st.pages;
      this.errors = st.errors;
      this.skipped = st.skipped;
    } else {
      this.frontier = new Frontier([], seeds.map((url) => ({ url, depth: 0 })));
    }
    this.fetcher = new Fetcher({
      limiter: new RateLimiter(this.spec.perHostRps),
      timeoutMs: this.spec.timeoutMs,
      connections: this.spec.concurrency + 1,
    });
    this.robots = new RobotsCache(this.fetcher, this.stop.signal, ctx.log);
    // Every in-flight request and politeness wait listens on it (and removes its listener).
    setMaxListeners(0, this.stop.signal);
  }

  private counters(): CrawlResult {
    return { pages: this.pages, errors: this.errors, skipped: this.skipped };
  }

  async run(): Promise<CrawlResult> {
    const onAbort = (): void => this.stop.abort(this.ctx.signal.reason);
    if (this.ctx.signal.aborted) onAbort();
    this.ctx.signal.addEventListener('abort', onAbort, { once: true });
    const timer = setInterval(() => this.maybeCheckpoint(), 1000);
    timer.unref();
    try {
      const { concurrency, maxPages } = this.spec;
      while (!this.stop.signal.aborted) {
        while (
          this.running.size < concurrency &&
          this.pages + this.errors + this.running.size < maxPages &&
          this.frontier.queued > 0
        ) {
          const p: Promise<void> = this.page(this.frontier.take()!)
            .catch((err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))))
            .finally(() => this.running.delete(p));
          this.running.add(p);
        }
        if (this.running.size === 0) break;
        await Promise.race([...this.running, this.stopped]);
      }
      if (this.fatal) throw this.fatal;
      if (this.ctx.signal.aborted) {
        await Promise.race([Promise.allSettled(this.running), delay(ABORT_GRACE_MS)]);
        await this.checkpointing;
        if (this.fatal) throw this.fatal;
        await this.checkpoint();
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
    if (!this.skippedUrls.has(url)) {
      this.skippedUrls.add(url);
      this.skipped++;
    }
  }

  /** refused says whether the spec's filters or a cached robots.txt rule out `url`. */
  private refused(url: string): boolean {
    const { sameHost, include, exclude, obeyRobots } = this.spec;
    if (sameHost && !this.seedHosts.has(new URL(url).host)) return true;
    if (include.length > 0 && !include.some((r) => r.test(url))) return true;
    if (exclude.some((r) => r.test(url))) return true;
    return obeyRobots && this.robots.allowedNow(url) === false;
  }

  private discover(links: readonly string[], depth: number): void {
    for (const url of links) {
      if (this.frontier.has(url)) continue;
      if (depth > this.spec.maxDepth || this.refused(url)) {
        this.skip(url);
      } else if (this.frontier.push(url, depth) && this.skippedUrls.delete(url)) {
        // First seen beyond maxDepth, now found closer to a seed.
        this.skipped--;
      }
    }
  }

  private async follow(target: string): Promise<'follow' | 'seen' | 'refused'> {
    if (this.frontier.has(target)) return 'seen';
    if (this.refused(target) || (this.spec.obeyRobots && !(await this.robots.allowed(target)))) {
      this.skip(target);
      return 'refused';
    }
    return this.frontier.claim(target) ? 'follow' : 'seen';
  }

  /** page fetches one frontier entry; it never rejects (failures are counted, or made fatal via fail()). */
  private async page(e: Entry): Promise<void> {
    const signal = this.stop.signal;
    try {
      if (this.spec.obeyRobots && !(await this.robots.allowed(e.url))) {
        this.skip(e.url);
        this.frontier.finish(e.url);
        return this.finished();
      }
      const out = await this.fetcher.page(e.url, signal, (t) => this.follow(t));
      if (out.kind === 'stopped') {
        this.frontier.finish(e.url, out.hops);
        return this.finished();
      }
      const { res, hops } = out;
      let ex: Extracted = { title: null, links: [], fields: {} };
      if (res.body !== null && isHtml(res.contentType)) {
        ex = extract(res.body, res.contentType, res.url, this.spec.extract);
      } else {
        for (const k of Object.keys(this.spec.extract)) ex.fields[k] = null;
      }
      if (res.status >= 200 && res.status < 300) this.discover(ex.links, e.depth + 1);
      const item = buildItem(res.url, res.status, e.depth, ex, new Date().toISOString());
      if (signal.aborted) return;
      try {
        await this.ctx.emit(item, { id: res.url });
      } catch (err) {
        if (this.ctx.signal.aborted) return;
        return this.fail(new Error(`crawl: emit failed for ${res.url}: ${(err as Error).message}`, { cause: err }));
      }
      this.frontier.finish(e.url, [...hops, res.url]);
      this.pages++;
    } catch (err) {
      // Aborted: the entry stays in flight, so the last checkpoint lists it for the resume.
      if (signal.aborted) return;
      this.errors++;
      this.frontier.finish(e.url);
      const msg = err instanceof FetchError ? err.message : `${e.url}: ${(err as Error).message}`;
      this.ctx.log.warn({ url: e.url, err: msg }, 'crawl: page failed');
    }
    this.finished();
  }

  private finished(): void {
    if (this.closed) return;
    this.finishedSinceCheckpoint++;
    this.report();
    this.maybeCheckpoint();
  }

  private report(): void {
    this.ctx.progress({ fetched: this.pages, queued: this.frontier.queued, errors: this.errors });
  }

  private maybeCheckpoint(): void {
    if (this.checkpointing || this.stop.signal.aborted || this.closed) return;
    const due =
      this.finishedSinceCheckpoint >= CHECKPOINT_EVERY_PAGES ||
      (this.finishedSinceCheckpoint > 0 && Date.now() - this.lastCheckpointAt >= CHECKPOINT_EVERY_MS);
    if (!due) return;
    this.checkpointing = this.checkpoint().finally(() => (this.checkpointing = undefined));
  }

  /** checkpoint never rejects: a refusal means another worker owns the task now, which is fatal. */
  private async checkpoint(): Promise<void> {
    const state = encodeState({ ...this.frontier.snapshot(), ...this.counters() });
    this.finishedSinceCheckpoint = 0;
    this.lastCheckpointAt = Date.now();
    const size = stateBytes(state);
    if (size > MAX_STATE_BYTES) {
      // Trimming is not an option (a dropped frontier URL would be lost for
      // good), so keep the last checkpoint that fit and crawl on.
      if (!this.oversizeWarned) {
        this.ctx.log.warn({ bytes: size, max: MAX_STATE_BYTES, visited: this.frontier.visitedCount }, 'crawl: state too big to checkpoint; a restart resumes from the last one that fit');
        this.oversizeWarned = true;
      }
      return;
    }
    try {
      await this.ctx.checkpoint(state);
    } catch (err) {
      this.fail(new Error(`crawl: checkpoint refused, stopping: ${(err as Error).message}`, { cause: err }));
    }
  }
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

export const crawl: TaskKind = {
  // async, so a bad spec rejects the returned promise like any other failure.
  run: async (ctx: TaskContext) => new Crawl(ctx).run(),
};
