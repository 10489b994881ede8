// The crawl on a sharded resource (spec.shards: N). Each shard owns the
// hosts (or registrable domains, partitionBy) that hash to it (partition.ts)
// and fetches only those, so perHostRps, perHostConcurrency, Crawl-delay and
// Retry-After hold cluster-wide: a host is fetched from one shard, and a
// shard runs in one place at a time (fenced).
//
// Durable state, none of it per URL in etcd:
// - The frontier is the shard's JetStream queue. Every URL to fetch is a
//   queue item `{ u, d, k?, r? }` (URL, depth, deferrals, sends again), sent with the URL's
//   64-bit hash as its id: links found for another shard's hosts go to that
//   shard, links for our own hosts to ourselves, and the stream's duplicate
//   window stores a link found on many pages once. An item is held
//   (unacknowledged) from the moment it is taken until its page is fetched,
//   its links' sends are stored and in a stored sent delta, its result is
//   emitted and its hash is in a stored seen delta; only then is it
//   acknowledged. A shard that dies
//   leaves what it held to the next owner (after ack_wait), so nothing is
//   lost and a move refetches at most the pages held then.
// - The seen-set is in memory (seen-set.ts, ~16.7 B per URL at 1M): the
//   URLs taken, and apart, those finished; the finished ones are in the
//   shard's task store too, as append-only deltas (seen-log.ts). An item
//   whose URL is taken is acknowledged at once (a duplicate dropped).
// - Receipts (receipts.ts): every URL sent is logged (sent-log.ts) and
//   pending until it shows up in its owner's seen log, and the shard is
//   busy (ctx.busy) while any is: a queue item JetStream stored and then
//   lost (nats-server 2.9.10's stream reset) is sent again, and the crawl
//   cannot complete without it.
// - What the shard remembers of URLs (taken, finished, held, both logs and
//   its receipts) is one room: shard-memory.ts.
// - The etcd checkpoint holds counters, the number of seen and sent deltas
//   written and the politeness state of a few hosts: a few KB at most,
//   whatever the number of URLs (shard-checkpoint.ts).
//
// Holding is bounded: at most WINDOW items (below the consumer's 10,000
// max_ack_pending); a full window with a host over HOST_CAP queued defers
// that host's newest items (deferral.ts). Held items count as work for the
// completion check (shard-io.ts): the shard looks idle only when it holds
// nothing, pages in flight and items waiting for their seen delta included.
//
// maxPages is split statically (shareOf, shard-items.ts): no overshoot.
//
// A shard that starts again (attempt > 1, or the same attempt again after its
// worker's lease lapsed and came back) sends nothing to any host for one
// full politeness interval (the longest of 1/perHostRps window and any
// Crawl-delay it kept), so its first request and the previous owner's last
// never share a window; Retry-After blocks still running are restored.

import { setMaxListeners } from 'node:events';
import type { InboxItem, TaskContext } from '#kinds/api.js';
import { orAborted } from '#platform/abortable.js';
import { systemClock, type Clock } from '#platform/clock.js';
import { DeferPause, deferredId, toDefer } from './deferral.js';
import { Fetcher } from './fetch.js';
import { HostHealth } from './host-health.js';
import { HostQueues } from './host-queues.js';
import { urlId } from './partition.js';
import { Politeness, windowWithDelay } from './politeness.js';
import { RobotsCache } from './robots.js';
import { hash64, SeenSet } from './seen-set.js';
import { readShardCheckpoint, restorePoliteness, ShardCheckpointer, type ShardStart } from './shard-checkpoint.js';
import { HOST_CAP, MAX_HOSTS_KEPT, parseItem, shareOf, WINDOW, type Job, type ShardCrawlResult } from './shard-items.js';
import { ShardLinks } from './shard-links.js';
import { ShardMemory } from './shard-memory.js';
import { ShardPage } from './shard-page.js';
import { ShardProgress, type SkipReason } from './shard-progress.js';
import type { CrawlSpec } from './spec.js';
import { UrlFilter } from './url-filter.js';
import { Waker } from './waker.js';

const CHECKPOINT_EVERY_MS = 5000;
const ABORT_GRACE_MS = 1000;

export class ShardedCrawl {
  private readonly clock: Clock = systemClock;
  private readonly index: number;
  private readonly quota: number;
  private readonly start: ShardStart;
  private readonly politeness: Politeness;
  private readonly health: HostHealth;
  private readonly queues: HostQueues;
  private readonly fetcher: Fetcher;
  private readonly robots: RobotsCache;
  private readonly filter: UrlFilter;
  private readonly links: ShardLinks;
  private readonly progress: ShardProgress;
  private readonly fetches: ShardPage;
  private readonly checkpointer: ShardCheckpointer;
  private readonly deferPause = new DeferPause(this.clock);
  private readonly stop = new AbortController();
  private readonly memory: ShardMemory;
  private readonly skippedUrls = new SeenSet();
  /** Crawl-delay seconds of at most MAX_HOSTS_KEPT hosts, for the checkpoint. */
  private readonly delays: Map<string, number>;
  private readonly running = new Set<Promise<void>>();
  private readonly side = new Set<Promise<void>>();
  private held = 0;
  /** Items delivered here for another shard's host (dropped). */
  private misdelivered = 0;
  private fatal: Error | undefined;
  /** Wakes the loop when a host may have become ready, an item arrived or room was made. */
  private readonly waker: Waker;
  private roomWaiter: (() => void) | undefined;
  private closed = false;
  private checkpointing: Promise<void> | undefined;

  constructor(
    private readonly ctx: TaskContext,
    private readonly spec: CrawlSpec,
    /** The holding bounds, and how soon an unreceipted send goes again; tests make them small. */
    private readonly limits: { window: number; hostCap: number; resendMs?: number } = { window: WINDOW, hostCap: HOST_CAP },
  ) {
    this.waker = new Waker(this.clock, this.stop.signal);
    if (!ctx.store) throw new Error('crawl: a sharded crawl keeps its seen-set in the task store, and this worker has none');
    this.index = ctx.shard.index;
    this.quota = shareOf(spec.maxPages, this.index, ctx.shard.count);
    this.start = readShardCheckpoint(ctx.checkpointed);
    this.delays = this.start.delays;
    // A shard started again waits one full interval before its first request (see the top).
    const interval = windowWithDelay(spec.perHostRps, Math.max(0, ...this.delays.values())).ms;
    const again = ctx.attempt > 1 || ctx.rerun === true || this.start.found;
    this.politeness = new Politeness({
      rps: spec.perHostRps,
      concurrency: spec.perHostConcurrency,
      clock: this.clock,
      ...(again ? { notBefore: this.clock.now() + interval } : {}),
    });
    restorePoliteness(this.politeness, this.start, this.clock);
    this.health = new HostHealth(spec, this.politeness, this.clock);
    this.progress = new ShardProgress(this.index, (p) => ctx.progress(p));
    this.progress.restore(this.start.counts);
    this.health.restore(this.start.parked);
    this.queues = new HostQueues(this.politeness, spec.obeyRobots || spec.sitemaps);
    this.fetcher = new Fetcher({ politeness: this.politeness, timeoutMs: spec.timeoutMs, connections: spec.perHostConcurrency + 1 });
    this.robots = new RobotsCache(this.fetcher, this.stop.signal, ctx.log, {
      throttled: (host, retryAfter, attempt) => {
        this.health.throttled(host, retryAfter);
        return attempt <= spec.maxRetries;
      },
      failed: (host) => !this.health.failed(host),
      answered: (host) => this.health.ok(host),
    });
    this.filter = new UrlFilter(spec, this.health, this.robots);
    this.memory = new ShardMemory(ctx, this.clock, (url) => this.links.owner(url), this.progress.resent, limits.resendMs);
    this.links = new ShardLinks(ctx, spec, this.memory.seen, this.filter, (url) => this.skip(url, 'filtered'), (to, url, depth) => this.memory.sending(to, url, depth));
    this.checkpointer = new ShardCheckpointer(ctx, this.politeness, this.clock, (err) => this.fail(err));
    this.fetches = new ShardPage({
      ctx, spec, signal: this.stop.signal, fetcher: this.fetcher, robots: this.robots, health: this.health, queues: this.queues,
      filter: this.filter, links: this.links, seen: this.memory.seen, progress: this.progress,
      skip: (url, why) => this.skip(url, why), skipJob: (job, why) => this.skipJob(job, why), done: (job) => this.done(job), report: () => this.report(),
    });
    this.politeness.onChange = (host) => {
      this.queues.wake(host);
      this.waker.nudge();
    };
    this.health.onPark = (host) => {
      ctx.log.warn({ host, after: spec.parkAfter, shard: this.index }, 'crawl: host parked after failing repeatedly; crawling on without it');
      for (const e of this.queues.park(host)) this.skipJob(e as Job, 'parked');
    };
    for (const h of this.health.parked) this.queues.park(h);
    this.queues.onNewHost = (host, url) => this.setup(host, new URL(url).origin);
    setMaxListeners(0, this.stop.signal);
  }

  counters(): ShardCrawlResult {
    return this.progress.result([...this.health.parked]);
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
      await this.memory.load(this.start);
      // Before the first read of the inbox, so before the shard can look idle.
      await this.links.seed(this.robots, this.fetcher, this.stop.signal);
      const reader = this.read().catch((err: unknown) => this.fail(err as Error));
      this.report();
      await this.loop();
      await reader;
      if (this.fatal) throw this.fatal;
      await Promise.race([Promise.allSettled(this.running), delay(ABORT_GRACE_MS)]);
      await this.checkpointing;
      this.memory.flush();
      await this.checkpoint();
      return this.counters();
    } finally {
      this.closed = true;
      clearInterval(timer);
      clearInterval(periodicCheckpoint);
      this.ctx.signal.removeEventListener('abort', onAbort);
      this.stop.abort(new Error('crawl finished'));
      this.memory.close();
      this.roomWaiter?.();
      await this.fetcher.close().catch(() => {});
    }
  }

  /** read takes inbox items while fewer than WINDOW are held, deferring over-cap hosts when the window is full. */
  private async read(): Promise<void> {
    const it = this.ctx.inbox[Symbol.asyncIterator]();
    while (!this.stop.signal.aborted) {
      if (this.held >= this.limits.window) {
        if (this.defer() === 0) await orAborted(new Promise<void>((resolve) => (this.roomWaiter = resolve)), this.stop.signal, undefined);
        this.roomWaiter = undefined;
        continue;
      }
      // The inbox ends when the task is stopped; a fatal error stops only us.
      const r = await orAborted(it.next(), this.stop.signal, { done: true as const, value: undefined });
      if (r.done) break;
      this.accept(r.value);
      this.waker.nudge();
    }
  }

  private accept(inbox: InboxItem): void {
    const q = parseItem(inbox.item);
    if (!q) {
      this.ctx.log.warn({ shard: this.index, item: JSON.stringify(inbox.item).slice(0, 200) }, 'crawl: not a crawl queue item; dropped');
      void inbox.ack().catch(() => {});
      return;
    }
    // A host is fetched by its owner only, whatever a queue delivers (nats-server
    // 2.9.10 after a reset has delivered items to the wrong shard): its sender's
    // receipt is still awaited, so it is sent again, to the owner.
    if (this.links.owner(q.u) !== this.index) {
      if (this.misdelivered++ % 100 === 0) this.ctx.log.warn({ shard: this.index, url: q.u, misdelivered: this.misdelivered }, 'crawl: an item for a host of another shard; dropped');
      void inbox.ack().catch(() => {});
      return;
    }
    const hash = hash64(q.u);
    const k = q.k ?? 0;
    const id = urlId(q.u);
    if (!this.memory.take(hash, id, { k, r: q.r ?? 0, redelivered: inbox.redelivered })) {
      this.progress.duplicates++;
      this.report();
      void inbox.ack().catch(() => {});
      return;
    }
    if (k > 0 && q.t !== undefined) this.deferPause.back(this.clock.wall() - q.t);
    const job: Job = { url: q.u, depth: q.d, ack: () => inbox.ack(), ticket: -1, hash, k, id };
    this.held++;
    const why: SkipReason | undefined = this.exhausted() ? 'maxPages' : q.d > this.spec.maxDepth ? 'filtered' : this.filter.refusal(q.u);
    if (why !== undefined) this.skipJob(job, why);
    else if (!this.queues.add(job)) this.skipJob(job, 'parked');
  }

  /** defer gives back the newest items of hosts over HOST_CAP while the window is full; returns how many. */
  private defer(): number {
    if (this.deferPause.paused) return 0;
    let n = 0;
    for (const [host, extra] of toDefer(this.held, this.limits.window, this.queues.lengths(), this.limits.hostCap)) {
      for (const e of this.queues.takeBack(host, extra)) {
        const job = e as Job;
        const k = job.k + 1;
        this.progress.deferred++;
        n++;
        this.memory.sending(this.index, job.url, job.depth);
        const sent = this.ctx.send(this.index, { u: job.url, d: job.depth, k, t: this.clock.wall() }, { id: deferredId(job.id, k) });
        this.track(sent.then(() => this.done(job, false)));
      }
    }
    return n;
  }

  private exhausted(): boolean {
    return this.progress.pages + this.progress.errors >= this.quota;
  }

  private async loop(): Promise<void> {
    const { concurrency } = this.spec;
    while (!this.stop.signal.aborted) {
      let nextAt: number | undefined;
      while (this.running.size < concurrency && this.progress.pages + this.progress.errors + this.running.size < this.quota) {
        const t = this.queues.take(this.clock.now());
        if (t === undefined) break;
        if (!('entry' in t)) {
          nextAt = t.at;
          break;
        }
        const job = t.entry as Job;
        const p: Promise<void> = this.fetches.fetch(job, t.release)
          .catch((err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))))
          .finally(() => this.running.delete(p));
        this.running.add(p);
      }
      // Out of budget: what is queued is skipped (and acknowledged), like an unsharded crawl's leftovers at maxPages.
      if (this.exhausted() && this.running.size === 0 && this.queues.queued > 0) for (const e of this.queues.drain()) this.skipJob(e as Job, 'maxPages');
      await this.waker.wait(nextAt, [...this.running, ...this.side]);
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
    this.waker.nudge();
  }

  private skip(url: string, why: SkipReason): void {
    if (!this.skippedUrls.add(url)) return;
    this.progress.skipped++;
    this.progress.skips[why]++;
  }

  private skipJob(job: Job, why: SkipReason): void {
    this.skip(job.url, why);
    this.done(job);
  }

  /**
   * done acknowledges a held item once its URL (and any redirect target it
   * claimed) is in a stored seen delta, unless it was deferred (`finished`
   * false: a copy of it is queued again), and the sent delta with its links
   * is stored (its sends and emit are, by now). The progress goes out before
   * the ack: the ack can make the shard idle, the whole may complete on
   * that, and a shard stopped so keeps its last progress as its result.
   */
  private done(job: Job, finished = true): void {
    this.fetches.fetched(job);
    const durable = this.memory.let(job, finished);
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
      durable
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
    this.progress.resent = this.memory.resent;
    this.progress.report({
      queued: this.queues.queued, held: this.held, inFlight: this.fetches.inFlight, parked: [...this.health.parked], unconfirmed: this.memory.unconfirmed,
    });
  }

  private periodic(): void {
    this.progress.sample();
    void this.memory.poll().then(() => this.report());
    this.report();
  }

  private async checkpoint(): Promise<void> {
    this.progress.resent = this.memory.resent;
    if (this.memory.loaded) await this.checkpointer.save(this.counters(), this.memory.written, this.delays, this.queues.lengths());
  }
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());
