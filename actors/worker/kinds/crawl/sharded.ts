// The crawl on a sharded resource (spec.shards: N). Each shard owns the
// hosts (or registrable domains, partitionBy) that hash to it (partition.ts)
// and fetches only those, so perHostRps, perHostConcurrency, Crawl-delay and
// Retry-After hold cluster-wide: a host is fetched from one shard, and a
// shard runs in one place at a time (fenced).
//
// Durable state, none of it per URL in etcd:
// - The frontier is the shard's JetStream queue. Every URL to fetch is a
//   queue item `{ u, d, k? }` (URL, depth, deferrals), sent with the URL's
//   64-bit hash as its id: links found for another shard's hosts go to that
//   shard, links for our own hosts to ourselves, and the stream's duplicate
//   window stores a link found on many pages once. An item is held
//   (unacknowledged) from the moment it is taken until its page is fetched,
//   its links' sends are stored, its result is emitted and its hash is in a
//   stored seen delta; only then is it acknowledged. A shard that dies
//   leaves what it held to the next owner (after ack_wait), so nothing is
//   lost and a move refetches at most the pages held then.
// - The seen-set is in memory (seen-set.ts, ~16.7 B per URL at 1M) and in
//   the shard's task store as append-only deltas (seen-log.ts). An item
//   whose URL is seen is acknowledged at once (a duplicate dropped).
// - The etcd checkpoint holds counters, the number of seen deltas written
//   and the politeness state of at most MAX_HOSTS_KEPT hosts (Crawl-delay,
//   a Retry-After block still running, parked hosts): a few KB at most,
//   whatever the number of URLs.
//
// Holding is bounded: at most WINDOW items (below the consumer's 10,000
// max_ack_pending); a full window with a host over HOST_CAP queued defers
// that host's newest items (deferral.ts). Held items count as work for the
// completion check (shard-io.ts): the shard looks idle only when it holds
// nothing, pages in flight and items waiting for their seen delta included.
//
// maxPages is split statically: shard i may fetch its share
// (floor(maxPages / N), plus one for the first maxPages mod N shards), so
// the whole crawl never exceeds maxPages (no overshoot); the price is that
// a shard whose hosts run dry leaves its unused share unused.
//
// A shard that starts again (attempt > 1) sends nothing to any host for one
// full politeness interval (the longest of 1/perHostRps window and any
// Crawl-delay it kept), so its first request and the previous owner's last
// never share a window; Retry-After blocks still running are restored.

import { setMaxListeners } from 'node:events';
import { MAX_STATE_BYTES, type InboxItem, type Json, type TaskContext } from '#kinds/api.js';
import { systemClock, type Clock } from '#platform/clock.js';
import { isThrottle } from './backoff.js';
import { stateBytes } from './checkpoint.js';
import { deferredId, toDefer } from './deferral.js';
import { extract, type Extracted } from './extract.js';
import { Fetcher, FetchError, isHtml } from './fetch.js';
import { canonicalize } from './frontier.js';
import { HostHealth } from './host-health.js';
import { HostQueues, hostOf, type Entry } from './host-queues.js';
import { buildItem } from './item.js';
import { shardOf, urlId } from './partition.js';
import { Politeness, windowWithDelay, type Release } from './politeness.js';
import { RobotsCache } from './robots.js';
import { hash64, SeenSet } from './seen-set.js';
import { loadSeen, SeenLog } from './seen-log.js';
import { readSitemaps } from './sitemaps.js';
import type { CrawlSpec } from './spec.js';

/** Most queue items a shard holds unacknowledged (the consumer allows 10,000). */
export const WINDOW = 4000;
/** Most queued items one host keeps while the window is full (deferral.ts). */
export const HOST_CAP = 500;
/** Most hosts whose politeness state the etcd checkpoint keeps. */
export const MAX_HOSTS_KEPT = 256;
const CHECKPOINT_EVERY_MS = 5000;
const ABORT_GRACE_MS = 1000;
const RATE_WINDOW_MS = 5000;
/** A deferred item back sooner than this means nothing else waits in the queue: deferring only churns. */
const QUICK_RETURN_MS = 1000;
const DEFER_PAUSE_MS = 5000;
const DEFER_PAUSE_MAX_MS = 60_000;
export const SHARDED_CHECKPOINT_VERSION = 2;

/** A queue item as sent between shards. */
export interface QueueItem {
  [k: string]: Json;
  u: string;
  d: number;
}

/** Job is one held queue item: a frontier entry plus what its acknowledgement waits for. */
interface Job extends Entry {
  ack: () => Promise<void>;
  /** The seen delta that must be stored before the ack. */
  ticket: number;
  /** Times this URL was deferred. */
  k: number;
  id: string;
  /** Being fetched (counted in inFlight). */
  fetching?: boolean;
}

/** The result (and progress) of one shard of a sharded crawl. */
export interface ShardCrawlResult {
  [k: string]: Json;
  shard: number;
  pages: number;
  errors: number;
  skipped: number;
  /** Items dropped because their URL was seen before (a link found on another page). */
  duplicates: number;
  /** Items sent to the back of the queue (deferral.ts). */
  deferred: number;
  parked: string[];
}

interface HostState {
  delays?: { [host: string]: number };
  /** Wall-clock ms until which the host answered 429/503. */
  blocks?: { [host: string]: number };
}

/** shareOf is shard `index`'s part of maxPages: the shares add up to maxPages exactly. */
export const shareOf = (maxPages: number, index: number, count: number): number =>
  Math.floor(maxPages / count) + (index < maxPages % count ? 1 : 0);

function parseItem(v: Json): QueueItem & { k?: number; t?: number } | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const { u, d, k, t } = v;
  if (typeof u !== 'string' || typeof d !== 'number' || !Number.isInteger(d) || d < 0) return undefined;
  if (k !== undefined && (typeof k !== 'number' || !Number.isInteger(k) || k < 0)) return undefined;
  if (canonicalize(u) !== u) return undefined;
  return { u, d, ...(k !== undefined ? { k } : {}), ...(typeof t === 'number' ? { t } : {}) };
}

const count = (v: unknown): number => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 0);

export class ShardedCrawl {
  private readonly clock: Clock = systemClock;
  private readonly index: number;
  private readonly count: number;
  private readonly quota: number;
  private readonly politeness: Politeness;
  private readonly health: HostHealth;
  private readonly queues: HostQueues;
  private readonly fetcher: Fetcher;
  private readonly robots: RobotsCache;
  private readonly stop = new AbortController();
  private readonly seen = new SeenSet();
  /** URLs this attempt sent already (to any shard): each is sent once per attempt. */
  private readonly sent = new SeenSet();
  private readonly skippedUrls = new SeenSet();
  private seenLog: SeenLog | undefined;
  private readonly seedHosts = new Set<string>();
  private readonly delays = new Map<string, number>();
  private readonly running = new Set<Promise<void>>();
  private readonly side = new Set<Promise<void>>();
  private held = 0;
  /** Pages being fetched (a page whose ack is under way is done fetching). */
  private fetching = 0;
  /** Deferral is paused until then (clock time): deferred items came straight back. */
  private deferPausedUntil = 0;
  private deferPauseMs = DEFER_PAUSE_MS;
  private pages = 0;
  private errors = 0;
  private skipped = 0;
  private duplicates = 0;
  private deferred = 0;
  private fatal: Error | undefined;
  private readonly stopped: Promise<void>;
  private nudge: () => void = () => {};
  private roomWaiter: (() => void) | undefined;
  private closed = false;
  private checkpointing: Promise<void> | undefined;
  private readonly rate: Array<[number, number]> = [];
  private warnedOversize = false;

  constructor(
    private readonly ctx: TaskContext,
    private readonly spec: CrawlSpec,
    /** The holding bounds; tests make them small to exercise deferral. */
    private readonly limits = { window: WINDOW, hostCap: HOST_CAP },
  ) {
    if (!ctx.store) throw new Error('crawl: a sharded crawl keeps its seen-set in the task store, and this worker has none');
    this.index = ctx.shard.index;
    this.count = ctx.shard.count;
    this.quota = shareOf(spec.maxPages, this.index, this.count);
    for (const s of spec.seeds) this.seedHosts.add(new URL(canonicalize(s)!).host);
    const cp = ctx.checkpointed as { [k: string]: Json } | undefined;
    const hosts = (cp?.hosts ?? {}) as HostState;
    for (const [h, s] of Object.entries(hosts.delays ?? {})) if (typeof s === 'number' && s > 0) this.delays.set(h, s);
    // A shard started again waits one full interval before its first request (see the top).
    const interval = windowWithDelay(spec.perHostRps, Math.max(0, ...this.delays.values())).ms;
    const again = ctx.attempt > 1 || cp !== undefined;
    this.politeness = new Politeness({
      rps: spec.perHostRps,
      concurrency: spec.perHostConcurrency,
      clock: this.clock,
      ...(again ? { notBefore: this.clock.now() + interval } : {}),
    });
    for (const [h, s] of this.delays) this.politeness.setCrawlDelay(h, s);
    const wall = this.clock.wall();
    for (const [h, until] of Object.entries(hosts.blocks ?? {})) {
      if (typeof until === 'number' && until > wall) this.politeness.block(h, this.clock.now() + (until - wall));
    }
    this.health = new HostHealth(spec, this.politeness, this.clock);
    if (cp) {
      this.pages = count(cp.pages);
      this.errors = count(cp.errors);
      this.skipped = count(cp.skipped);
      this.duplicates = count(cp.duplicates);
      this.deferred = count(cp.deferred);
      if (Array.isArray(cp.parked)) this.health.restore(cp.parked.filter((h): h is string => typeof h === 'string'));
    }
    this.queues = new HostQueues(this.politeness, spec.obeyRobots || spec.sitemaps);
    this.fetcher = new Fetcher({ politeness: this.politeness, timeoutMs: spec.timeoutMs, connections: spec.perHostConcurrency + 1 });
    this.robots = new RobotsCache(this.fetcher, this.stop.signal, ctx.log, {
      throttled: (host, retryAfter, attempt) => {
        this.health.throttled(host, retryAfter);
        return attempt <= spec.maxRetries;
      },
      failed: (host) => !this.health.failed(host),
    });
    this.politeness.onChange = (host) => {
      this.queues.wake(host);
      this.nudge();
    };
    this.health.onPark = (host) => {
      ctx.log.warn({ host, after: spec.parkAfter, shard: this.index }, 'crawl: host parked after failing repeatedly; crawling on without it');
      for (const e of this.queues.park(host)) this.skipJob(e as Job);
    };
    for (const h of this.health.parked) this.queues.park(h);
    this.queues.onNewHost = (host, url) => this.setup(host, new URL(url).origin);
    this.stopped = new Promise<void>((resolve) => this.stop.signal.addEventListener('abort', () => resolve(), { once: true }));
    setMaxListeners(0, this.stop.signal);
  }

  private owner(url: string): number {
    return shardOf(url, this.spec.partitionBy, this.count);
  }

  counters(): ShardCrawlResult {
    return {
      shard: this.index, pages: this.pages, errors: this.errors, skipped: this.skipped,
      duplicates: this.duplicates, deferred: this.deferred, parked: [...this.health.parked],
    };
  }

  async run(): Promise<ShardCrawlResult> {
    const onAbort = (): void => this.stop.abort(this.ctx.signal.reason);
    if (this.ctx.signal.aborted) onAbort();
    this.ctx.signal.addEventListener('abort', onAbort, { once: true });
    const timer = setInterval(() => this.periodic(), 1000);
    timer.unref();
    let lastCheckpoint = Date.now();
    const periodicCheckpoint = setInterval(() => {
      if (Date.now() - lastCheckpoint < CHECKPOINT_EVERY_MS || this.checkpointing || this.closed) return;
      lastCheckpoint = Date.now();
      this.checkpointing = this.checkpoint().finally(() => (this.checkpointing = undefined));
    }, 1000);
    periodicCheckpoint.unref();
    try {
      await this.load();
      // Before the first read of the inbox, so before the shard can look idle.
      await this.seed();
      const reader = this.read().catch((err: unknown) => this.fail(err as Error));
      this.report();
      await this.loop();
      await reader;
      if (this.fatal) throw this.fatal;
      await Promise.race([Promise.allSettled(this.running), delay(ABORT_GRACE_MS)]);
      await this.checkpointing;
      this.seenLog?.flush();
      await this.checkpoint();
      return this.counters();
    } finally {
      this.closed = true;
      clearInterval(timer);
      clearInterval(periodicCheckpoint);
      this.ctx.signal.removeEventListener('abort', onAbort);
      this.stop.abort(new Error('crawl finished'));
      this.seenLog?.close();
      this.roomWaiter?.();
      await this.fetcher.close().catch(() => {});
    }
  }

  /** load reads the seen deltas back; the checkpoint's count says how many at least were written. */
  private async load(): Promise<void> {
    const cp = this.ctx.checkpointed as { [k: string]: Json } | undefined;
    const written = count(cp?.seen);
    const started = Date.now();
    const got = await loadSeen(this.ctx.store!, written, this.seen);
    if (got.hashes > 0 || got.lost > 0) {
      this.ctx.log.info({ shard: this.index, deltas: got.next, urls: got.hashes, lost: got.lost, ms: Date.now() - started }, 'crawl: seen-set loaded');
    }
    if (got.lost > 0) this.ctx.log.warn({ shard: this.index, lost: got.lost }, 'crawl: seen deltas missing from the task store (it drops its oldest writes when full); their URLs may be fetched again');
    this.seenLog = new SeenLog(this.ctx.store!, this.clock, got.next);
  }

  /** seed sends this shard's seeds (and, with sitemaps, their sitemaps' URLs) to its own queue. */
  private async seed(): Promise<void> {
    const mine = this.spec.seeds.map((s) => canonicalize(s)!).filter((s) => this.owner(s) === this.index);
    await Promise.all(this.sendLinks(mine, 0, true));
    if (!this.spec.sitemaps) return;
    for (const origin of new Set(mine.map((s) => new URL(s).origin))) {
      if (this.stop.signal.aborted) return;
      await this.robots.load(origin);
      const info = this.robots.info(origin);
      const roots = info.sitemaps.length > 0 ? info.sitemaps : [`${origin}/sitemap.xml`];
      const sends: Array<Promise<void>> = [];
      await readSitemaps(this.fetcher, roots, this.stop.signal, this.ctx.log, (urls) => void sends.push(...this.sendLinks(urls, 0, true)));
      await Promise.all(sends);
    }
  }

  /** read takes inbox items while fewer than WINDOW are held, deferring over-cap hosts when the window is full. */
  private async read(): Promise<void> {
    const it = this.ctx.inbox[Symbol.asyncIterator]();
    while (!this.stop.signal.aborted) {
      if (this.held >= this.limits.window) {
        if (this.defer() === 0) await Promise.race([new Promise<void>((resolve) => (this.roomWaiter = resolve)), this.stopped]);
        this.roomWaiter = undefined;
        continue;
      }
      // The inbox ends when the task is stopped; a fatal error stops only us.
      const r = await Promise.race([it.next(), this.stopped.then(() => ({ done: true as const, value: undefined }))]);
      if (r.done) break;
      this.accept(r.value);
      this.nudge();
    }
  }

  private accept(inbox: InboxItem): void {
    const q = parseItem(inbox.item);
    if (!q) {
      this.ctx.log.warn({ shard: this.index, item: JSON.stringify(inbox.item).slice(0, 200) }, 'crawl: not a crawl queue item; dropped');
      void inbox.ack().catch(() => {});
      return;
    }
    const [hi, lo] = hash64(q.u);
    const k = q.k ?? 0;
    const isNew = this.seen.addHash(hi, lo);
    // Seen before, the item is a duplicate, unless it is the one live copy of
    // an accepted URL: a deferred one (k > 0), or one delivered before whose
    // work was cut off (a move or restart: at most what was held then).
    if (!isNew && k === 0 && !inbox.redelivered) {
      this.duplicates++;
      this.report();
      void inbox.ack().catch(() => {});
      return;
    }
    // Not new: its hash may still be in the delta being filled, so wait for that one too.
    const ticket = isNew ? this.seenLog!.add(hi, lo) : this.seenLog!.filling;
    if (k > 0 && q.t !== undefined) this.deferredBack(this.clock.wall() - q.t);
    const job: Job = { url: q.u, depth: q.d, ack: () => inbox.ack(), ticket, k, id: urlId(q.u) };
    this.held++;
    if (this.exhausted() || q.d > this.spec.maxDepth || this.refused(q.u) || !this.queues.add(job)) this.skipJob(job);
  }

  /**
   * deferredBack notes how long a deferred item took to come back. Straight
   * back means the queue holds nothing else to fetch meanwhile: then
   * deferring only sends items round in circles, so it pauses (5 s, doubling
   * up to 60 s while it keeps happening) and the window waits for room.
   */
  private deferredBack(ms: number): void {
    if (ms >= QUICK_RETURN_MS) {
      this.deferPauseMs = DEFER_PAUSE_MS;
      return;
    }
    const now = this.clock.now();
    if (now < this.deferPausedUntil) return;
    this.deferPausedUntil = now + this.deferPauseMs;
    this.deferPauseMs = Math.min(this.deferPauseMs * 2, DEFER_PAUSE_MAX_MS);
  }

  /** defer gives back the newest items of hosts over HOST_CAP while the window is full; returns how many. */
  private defer(): number {
    if (this.clock.now() < this.deferPausedUntil) return 0;
    let n = 0;
    for (const [host, extra] of toDefer(this.held, this.limits.window, this.queues.lengths(), this.limits.hostCap)) {
      for (const e of this.queues.takeBack(host, extra)) {
        const job = e as Job;
        const k = job.k + 1;
        this.deferred++;
        n++;
        const sent = this.ctx.send(this.index, { u: job.url, d: job.depth, k, t: this.clock.wall() }, { id: deferredId(job.id, k) });
        this.track(sent.then(() => this.done(job)));
      }
    }
    return n;
  }

  private exhausted(): boolean {
    return this.pages + this.errors >= this.quota;
  }

  private async loop(): Promise<void> {
    const { concurrency } = this.spec;
    while (!this.stop.signal.aborted) {
      let nextAt: number | undefined;
      while (this.running.size < concurrency && this.pages + this.errors + this.running.size < this.quota) {
        const t = this.queues.take(this.clock.now());
        if (t === undefined) break;
        if (!('entry' in t)) {
          nextAt = t.at;
          break;
        }
        const job = t.entry as Job;
        const p: Promise<void> = this.page(job, t.release)
          .catch((err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))))
          .finally(() => this.running.delete(p));
        this.running.add(p);
      }
      // Out of budget: what is queued is skipped (and acknowledged), like an unsharded crawl's leftovers at maxPages.
      if (this.exhausted() && this.running.size === 0 && this.queues.queued > 0) for (const e of this.queues.drain()) this.skipJob(e as Job);
      await this.idle(nextAt);
    }
  }

  private async idle(at: number | undefined): Promise<void> {
    const wake = new Promise<void>((resolve) => (this.nudge = resolve));
    const timer = at === undefined ? undefined : this.clock.after(Math.max(0, at - this.clock.now()), () => this.nudge());
    try {
      await Promise.race([...this.running, ...this.side, this.stopped, wake]);
    } finally {
      timer?.cancel();
      this.nudge = () => {};
    }
  }

  private fail(err: Error): void {
    if (this.stop.signal.aborted && this.ctx.signal.aborted) return;
    this.fatal ??= err;
    this.stop.abort(err);
  }

  private track(p: Promise<void>): void {
    const q = p.catch((err: unknown) => this.fail(err as Error)).finally(() => this.side.delete(q));
    this.side.add(q);
  }

  private setup(host: string, origin: string): void {
    this.track(this.setupHost(host, origin).catch((err: unknown) => {
      if (!this.stop.signal.aborted) throw err;
    }));
  }

  private async setupHost(host: string, origin: string): Promise<void> {
    if (this.spec.obeyRobots || this.spec.sitemaps) await this.robots.load(origin);
    const info = this.robots.info(origin);
    if (this.spec.obeyRobots && info.crawlDelay !== undefined) {
      this.politeness.setCrawlDelay(host, info.crawlDelay);
      if (this.delays.size < MAX_HOSTS_KEPT) this.delays.set(host, info.crawlDelay);
    }
    this.queues.ready(host);
    this.nudge();
  }

  /** refused: the spec's filters, a parked host, or a cached robots.txt rule out `url`. */
  private refused(url: string): boolean {
    const { sameHost, include, exclude, obeyRobots } = this.spec;
    const host = hostOf(url);
    if (sameHost && !this.seedHosts.has(host)) return true;
    if (include.length > 0 && !include.some((r) => r.test(url))) return true;
    if (exclude.some((r) => r.test(url))) return true;
    if (this.health.isParked(host)) return true;
    return obeyRobots && this.robots.allowedNow(url) === false;
  }

  /** filtered: ruled out by what every shard knows (depth, sameHost, include/exclude), so not worth sending. */
  private filtered(url: string, depth: number): boolean {
    const { sameHost, include, exclude, maxDepth } = this.spec;
    if (depth > maxDepth) return true;
    if (sameHost && !this.seedHosts.has(hostOf(url))) return true;
    if (include.length > 0 && !include.some((r) => r.test(url))) return true;
    return exclude.some((r) => r.test(url));
  }

  /** sendLinks sends each link not sent or seen before to its owner's queue; seeds go even if this attempt saw them (the queue dedupes). */
  private sendLinks(links: readonly string[], depth: number, seeds = false): Array<Promise<void>> {
    const out: Array<Promise<void>> = [];
    for (const url of links) {
      if (!seeds && this.filtered(url, depth)) {
        if (this.skippedUrls.add(url)) this.skipped++;
        continue;
      }
      const to = this.owner(url);
      if (to === this.index && this.seen.has(url)) continue;
      if (!this.sent.add(url) && !seeds) continue;
      out.push(this.ctx.send(to, { u: url, d: depth }, { id: urlId(url) }));
    }
    return out;
  }

  /** follow vets a redirect target: another shard's goes to its owner (this chain stops), ours is claimed in the seen-set. */
  private async follow(target: string, job: Job, sends: Array<Promise<void>>): Promise<'follow' | 'seen' | 'refused'> {
    if (this.owner(target) !== this.index) {
      sends.push(...this.sendLinks([target], job.depth));
      return 'seen';
    }
    const [hi, lo] = hash64(target);
    if (this.seen.hasHash(hi, lo)) return 'seen';
    if (this.refused(target) || (this.spec.obeyRobots && !(await this.robots.allowed(target)))) {
      if (this.skippedUrls.add(target)) this.skipped++;
      return 'refused';
    }
    if (!this.seen.addHash(hi, lo)) return 'seen';
    job.ticket = Math.max(job.ticket, this.seenLog!.add(hi, lo));
    return 'follow';
  }

  /** page fetches one held item's URL with the politeness slot taken for it; it never rejects but through fail(). */
  private async page(job: Job, release: Release): Promise<void> {
    this.fetching++;
    job.fetching = true;
    try {
      await this.fetchPage(job, release);
    } finally {
      this.fetched(job);
    }
  }

  /** fetched ends a page's fetch in the count (once: done() ends it too, before its progress goes out). */
  private fetched(job: Job): void {
    if (!job.fetching) return;
    job.fetching = false;
    this.fetching--;
  }

  private async fetchPage(job: Job, release: Release): Promise<void> {
    const signal = this.stop.signal;
    let slot: Release | undefined = release;
    const sends: Array<Promise<void>> = [];
    try {
      if (this.spec.obeyRobots) {
        if (this.robots.allowedNow(job.url) === undefined) {
          slot();
          slot = undefined;
        }
        if (!(await this.robots.allowed(job.url))) {
          slot?.();
          return this.skipJob(job);
        }
      }
      const first = slot;
      slot = undefined;
      const out = await this.fetcher.page(job.url, signal, (t) => this.follow(t, job, sends), first);
      if (out.kind === 'stopped') {
        await Promise.all(sends);
        return this.done(job);
      }
      const { res } = out;
      if (isThrottle(res.status)) {
        this.health.throttled(hostOf(res.url), res.retryAfter);
        if ((job.retries ?? 0) < this.spec.maxRetries) {
          // Still held: fetched again once the host's wait is over.
          job.retries = (job.retries ?? 0) + 1;
          job.url = res.url;
          await Promise.all(sends);
          if (!this.queues.add(job, true)) this.skipJob(job);
          this.report();
          return;
        }
      } else {
        this.health.ok(hostOf(res.url));
      }
      let ex: Extracted = { title: null, links: [], fields: {} };
      if (res.body !== null && isHtml(res.contentType)) ex = extract(res.body, res.contentType, res.url, this.spec.extract);
      else for (const key of Object.keys(this.spec.extract)) ex.fields[key] = null;
      if (res.status >= 200 && res.status < 300) sends.push(...this.sendLinks(ex.links, job.depth + 1));
      const item = buildItem(res.url, res.status, job.depth, ex, new Date().toISOString());
      if (signal.aborted) return;
      await Promise.all([...sends, this.ctx.emit(item, { id: urlId(res.url) })]);
      this.pages++;
      this.done(job);
    } catch (err) {
      slot?.();
      // Stopping: the item stays held and goes back to the queue as the attempt ends.
      if (signal.aborted) return;
      if (!(err instanceof FetchError)) throw err; // a send or emit refused: fatal, and the item stays held
      this.errors++;
      this.ctx.log.warn({ url: job.url, err: err.message }, 'crawl: page failed');
      if (err.host !== undefined) this.health.failed(err.host);
      await Promise.all(sends);
      this.done(job);
    }
  }

  private skipJob(job: Job): void {
    if (this.skippedUrls.add(job.url)) this.skipped++;
    this.done(job);
  }

  /**
   * done acknowledges a held item once its seen delta is stored (its sends
   * and emit are, by now). The progress goes out before the ack: the ack can
   * make the shard idle, the whole may complete on that, and a shard stopped
   * so keeps its last progress as its result.
   */
  private done(job: Job): void {
    this.fetched(job);
    let counted = false;
    const release = (): void => {
      if (counted) return;
      counted = true;
      this.held--;
      const w = this.roomWaiter;
      this.roomWaiter = undefined;
      w?.();
    };
    this.track(
      this.seenLog!.durable(job.ticket)
        .then(() => {
          release();
          this.report();
          return job.ack();
        })
        .finally(release),
    );
  }

  private report(): void {
    if (this.closed) return;
    const now = Date.now();
    const first = this.rate[0];
    const pagesPerSec = first && now > first[0] ? Math.round(((this.pages - first[1]) * 1000 * 10) / (now - first[0])) / 10 : 0;
    this.ctx.progress({
      fetched: this.pages,
      // The result's name for it: a shard stopped at completion keeps this progress as its result.
      pages: this.pages,
      queued: this.queues.queued,
      held: this.held,
      inFlight: this.fetching,
      errors: this.errors,
      skipped: this.skipped,
      duplicates: this.duplicates,
      deferred: this.deferred,
      parked: [...this.health.parked],
      pagesPerSec,
    });
  }

  private periodic(): void {
    const now = Date.now();
    this.rate.push([now, this.pages]);
    while (this.rate.length > 1 && now - this.rate[0]![0] > RATE_WINDOW_MS) this.rate.shift();
    this.report();
  }

  /** checkpoint writes the small state; a refusal means another worker owns the shard now, which is fatal. */
  private async checkpoint(): Promise<void> {
    if (!this.seenLog) return;
    const wall = this.clock.wall();
    const now = this.clock.now();
    const blocks: { [host: string]: number } = {};
    let kept = 0;
    for (const [h] of this.queues.lengths()) {
      const until = this.politeness.blockedUntil(h);
      if (until > now && kept++ < MAX_HOSTS_KEPT) blocks[h] = Math.round(wall + (until - now));
    }
    const state: Json = {
      v: SHARDED_CHECKPOINT_VERSION,
      ...this.counters(),
      seen: this.seenLog.written,
      hosts: { delays: Object.fromEntries(this.delays), blocks },
    };
    if (stateBytes(state) > MAX_STATE_BYTES) {
      if (!this.warnedOversize) this.ctx.log.warn({ bytes: stateBytes(state) }, 'crawl: shard checkpoint too big (too many parked hosts?); keeping the last one');
      this.warnedOversize = true;
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
