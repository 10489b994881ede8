// The fetch of one held queue item of a sharded crawl: robots.txt, the
// request (each redirect vetted by follow), a retry after a 429/503 or a
// host that did not answer, extraction,
// the sends of its links and its emit, and only then done() (whose ack
// waits for the seen delta). The shard loop (sharded.ts) only schedules
// these; keeping the step apart keeps what makes a page count as done in
// one place.

import type { TaskContext } from '#kinds/api.js';
import { isThrottle } from './backoff.js';
import { extractPage } from './extract.js';
import { FetchError, type Fetcher } from './fetch.js';
import type { HostHealth } from './host-health.js';
import { hostOf, type HostQueues } from './host-queues.js';
import { buildItem } from './item.js';
import { urlId } from './partition.js';
import type { Release } from './politeness.js';
import type { RobotsCache } from './robots.js';
import { hash64, type SeenSet } from './seen-set.js';
import type { Job } from './shard-items.js';
import type { ShardLinks } from './shard-links.js';
import type { ShardProgress, SkipReason } from './shard-progress.js';
import type { CrawlSpec } from './spec.js';
import type { UrlFilter } from './url-filter.js';

/** What a page's fetch uses of its shard. */
export interface ShardPageParts {
  ctx: TaskContext;
  spec: CrawlSpec;
  /** Aborts when the shard stops. */
  signal: AbortSignal;
  fetcher: Fetcher;
  robots: RobotsCache;
  health: HostHealth;
  queues: HostQueues;
  filter: UrlFilter;
  links: ShardLinks;
  seen: SeenSet;
  progress: ShardProgress;
  skip: (url: string, why: SkipReason) => void;
  skipJob: (job: Job, why: SkipReason) => void;
  done: (job: Job) => void;
  report: () => void;
}

export class ShardPage {
  /** Pages being fetched (a page whose ack is under way is done fetching). */
  inFlight = 0;

  constructor(private readonly s: ShardPageParts) {}

  /** fetch fetches one held item's URL with the politeness slot taken for it; it rejects only on what is fatal to the shard. */
  async fetch(job: Job, release: Release): Promise<void> {
    this.inFlight++;
    job.fetching = true;
    try {
      await this.fetchPage(job, release);
    } finally {
      this.fetched(job);
    }
  }

  /** fetched ends a page's fetch in the count (once: done() ends it too, before its progress goes out). */
  fetched(job: Job): void {
    if (!job.fetching) return;
    job.fetching = false;
    this.inFlight--;
  }

  /** follow vets a redirect target: another shard's goes to its owner (this chain stops), ours is claimed in the seen-set. */
  private async follow(target: string, job: Job, sends: Array<Promise<void>>): Promise<'follow' | 'seen' | 'refused'> {
    const { links, seen, filter, spec, robots } = this.s;
    if (links.owner(target) !== this.s.ctx.shard.index) {
      sends.push(...links.send([target], job.depth));
      return 'seen';
    }
    const [hi, lo] = hash64(target);
    if (seen.hasHash(hi, lo)) return 'seen';
    const why = filter.refusal(target) ?? (spec.obeyRobots && !(await robots.allowed(target)) ? 'robots' : undefined);
    if (why !== undefined) {
      this.s.skip(target, why);
      return 'refused';
    }
    if (!seen.addHash(hi, lo)) return 'seen';
    // Logged (a receipt for whoever sent it) only once this job is finished.
    (job.claimed ??= []).push(hi, lo);
    return 'follow';
  }

  private async fetchPage(job: Job, release: Release): Promise<void> {
    const { ctx, spec, signal, robots, health } = this.s;
    let slot: Release | undefined = release;
    const sends: Array<Promise<void>> = [];
    try {
      if (spec.obeyRobots) {
        if (robots.allowedNow(job.url) === undefined) {
          slot();
          slot = undefined;
        }
        if (!(await robots.allowed(job.url))) {
          slot?.();
          // Disallowed whole when its host was parked (robots.txt unreachable parkAfter times).
          return this.s.skipJob(job, health.isParked(hostOf(job.url)) ? 'parked' : 'robots');
        }
      }
      const first = slot;
      slot = undefined;
      const out = await this.s.fetcher.page(job.url, signal, (t) => this.follow(t, job, sends), first);
      if (out.kind === 'stopped') {
        await Promise.all(sends);
        return this.s.done(job);
      }
      const { res } = out;
      if (isThrottle(res.status)) {
        health.throttled(hostOf(res.url), res.retryAfter);
        if ((job.retries ?? 0) < spec.maxRetries) {
          // Still held: fetched again once the host's wait is over.
          await Promise.all(sends);
          return this.again(job, res.url);
        }
      } else {
        health.ok(hostOf(res.url));
      }
      const ex = extractPage(res, spec.extract);
      if (res.status >= 200 && res.status < 300) sends.push(...this.s.links.send(ex.links, job.depth + 1));
      const item = buildItem(res.url, res.status, job.depth, ex, new Date().toISOString());
      if (signal.aborted) return;
      await Promise.all([...sends, ctx.emit(item, { id: urlId(res.url) })]);
      this.s.progress.pages++;
      this.s.done(job);
    } catch (err) {
      slot?.();
      // Stopping: the item stays held and goes back to the queue as the attempt ends.
      if (signal.aborted) return;
      if (!(err instanceof FetchError)) throw err; // a send or emit refused: fatal, and the item stays held
      const parked = err.host !== undefined && health.failed(err.host);
      await Promise.all(sends);
      // The host did not answer (a network error or a timeout, which a stall
      // of this process causes as well): like a throttle, the page stays held,
      // waits out the host's back-off and is asked again. Given up (an error)
      // after maxRetries, or at once when that failure parked the host.
      if (err.host !== undefined && !parked && (job.retries ?? 0) < spec.maxRetries) return this.again(job, err.url ?? job.url);
      this.s.progress.errors++;
      ctx.log.warn({ url: job.url, err: err.message, retries: job.retries ?? 0 }, 'crawl: page failed');
      this.s.done(job);
    }
  }

  /** again puts a held job back in its host's queue to be asked again at `url` (the hop that failed); skipped if its host is parked meanwhile. */
  private again(job: Job, url: string): void {
    job.retries = (job.retries ?? 0) + 1;
    job.url = url;
    if (!this.s.queues.add(job, true)) this.s.skipJob(job, 'parked');
    this.s.report();
  }
}
