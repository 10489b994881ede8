// The soak's mixed load, kept at a steady state so that nothing it does
// should make a healthy process grow:
//
//   writers   SOAK_INFLIGHT loops adding and deleting names from a fixed pool
//             (noop tasks), so the number of resources stays bounded
//   reader    one loop: resource.list every second, a resource.get of a pool
//             name, cluster.status every fifth round
//   watcher   a plain NATS connection subscribed to events.>, counting events
//   crawls    SOAK_CRAWLS crawl resources at a time, each on its own loopback
//             site (test/fixtures/site.ts, as chaos/crawls.ts does); once one
//             completes (or fails, or times out) it is deleted, its results
//             purged from the stream and its site closed, and the next one
//             starts under a new name
//
// Outcomes are counted, not judged: faults make requests fail now and then,
// and the soak looks for growth, not for correctness (that is `npm run chaos`).

import { connect, type NatsConnection } from 'nats';
import type { GafferClient } from '#client/client.js';
import { ErrorCode, GafferError } from '#protocol/errors.js';
import { RESULTS_STREAM, subjects } from '#protocol/subjects.js';
import { sleep } from '#platform/clock.js';
import { startSite, type Site } from '#test/fixtures/site.js';
import type { Rng } from '#harness/rng.js';
import type { SoakConfig } from './config.js';

export interface LoadCounts {
  /** "<op> <outcome>" -> count; outcome is ok or an error code. */
  requests: Record<string, number>;
  /** events.<a>.<b> -> count. */
  events: Record<string, number>;
  crawls: { started: number; completed: number; failed: number; timedOut: number; deleted: number; purgeErrors: number };
}

interface Crawl {
  name: string;
  site: Site;
  startedAt: number;
  state: string;
}

const bump = (o: Record<string, number>, k: string): void => void (o[k] = (o[k] ?? 0) + 1);

export class Load {
  readonly counts: LoadCounts = {
    requests: {},
    events: {},
    crawls: { started: 0, completed: 0, failed: 0, timedOut: 0, deleted: 0, purgeErrors: 0 },
  };
  private stopping = false;
  private loops: Array<Promise<void>> = [];
  private readonly present = new Set<string>();
  private readonly busy = new Set<string>();
  private readonly names: string[];
  private readonly crawls = new Set<Crawl>();
  private crawlSeq = 0;
  /** Worker id -> when one of our crawls was last seen placed there (not yet completed or failed). */
  private readonly crawlSeen = new Map<string, number>();
  private watchNc: NatsConnection | undefined;

  constructor(
    private readonly client: GafferClient,
    private readonly natsUrl: string,
    private readonly cfg: SoakConfig,
    private readonly rng: Rng,
    private readonly log: (s: string) => void,
  ) {
    this.names = Array.from({ length: cfg.load.names }, (_, i) => `soak-${String(i).padStart(2, '0')}`);
  }

  async start(): Promise<void> {
    // The watcher: one more NATS client, as `nats sub 'events.>'` or `gaffer watch` would be.
    this.watchNc = await connect({ servers: this.natsUrl, name: 'soak-watch', maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    const sub = this.watchNc.subscribe(subjects.allEvents);
    this.loops.push(
      (async () => {
        for await (const m of sub) bump(this.counts.events, m.subject.split('.').slice(0, 3).join('.'));
      })(),
    );
    for (let i = 0; i < this.cfg.load.inflight; i++) this.loops.push(this.writer());
    this.loops.push(this.reader());
    if (this.cfg.crawls.concurrent > 0) this.loops.push(this.crawler());
  }

  /**
   * crawling says whether a crawl of ours ran on this worker within the last
   * `withinMs` (as the crawler last saw it, about every second): its worker
   * thread and sockets are then part of the worker's RSS and descriptors.
   */
  crawling(worker: string, withinMs: number, now = Date.now()): boolean {
    const at = this.crawlSeen.get(worker);
    return at !== undefined && now - at <= withinMs;
  }

  /** stop ends every loop (requests in flight finish within the client timeout), deletes what it added and closes the sites. */
  async stop(): Promise<void> {
    this.stopping = true;
    const watch = this.watchNc;
    this.watchNc = undefined;
    await watch?.drain().catch(() => undefined);
    await Promise.all(this.loops);
    for (const c of this.crawls) await c.site.close().catch(() => undefined);
    this.crawls.clear();
  }

  /** request runs one client call and counts its outcome: the value, or the error code. */
  private async request<T>(op: string, f: () => Promise<T>): Promise<{ value?: T; code: string }> {
    let out: { value?: T; code: string };
    try {
      out = { value: await f(), code: 'ok' };
    } catch (err) {
      out = { code: err instanceof GafferError ? err.code : 'CLIENT_ERROR' };
    }
    bump(this.counts.requests, `${op} ${out.code}`);
    return out;
  }

  private async writer(): Promise<void> {
    while (!this.stopping) {
      const idle = this.names.filter((n) => !this.busy.has(n));
      if (idle.length > 0) {
        const name = this.rng.pick(idle);
        this.busy.add(name);
        try {
          if (this.present.has(name)) {
            const r = await this.request('delete', () => this.client.delete(name));
            if (r.code === 'ok' || r.code === ErrorCode.NOT_FOUND) this.present.delete(name);
          } else {
            // An add that failed may still have been applied; the next pick of this name may add it again (answered created: false).
            const r = await this.request('add', () => this.client.add(name));
            if (r.code === 'ok') this.present.add(name);
          }
        } finally {
          this.busy.delete(name);
        }
      }
      await sleep(this.rng.between(this.cfg.load.thinkMs[0], this.cfg.load.thinkMs[1]));
    }
  }

  private async reader(): Promise<void> {
    for (let round = 0; !this.stopping; round++) {
      await this.request('list', () => this.client.list());
      await this.request('get', () => this.client.get(this.rng.pick(this.names)));
      if (round % 5 === 0) await this.request('status', () => this.client.status());
      await sleep(this.cfg.load.readEveryMs);
    }
  }

  private async crawler(): Promise<void> {
    while (!this.stopping) {
      while (this.crawls.size < this.cfg.crawls.concurrent && !this.stopping) {
        try {
          await this.begin();
        } catch (err) {
          this.log(`crawl start failed: ${(err as Error).message}`);
          break;
        }
      }
      for (const c of [...this.crawls]) {
        const r = await this.request('get', () => this.client.get(c.name));
        if (r.value) {
          c.state = r.value.state;
          if (r.value.worker && c.state !== 'completed' && c.state !== 'failed') this.crawlSeen.set(r.value.worker, Date.now());
        }
        const over = Date.now() - c.startedAt > this.cfg.crawls.timeoutMs;
        if (c.state === 'completed' || c.state === 'failed' || over) {
          if (c.state === 'completed') this.counts.crawls.completed++;
          else if (c.state === 'failed') this.counts.crawls.failed++;
          else {
            this.counts.crawls.timedOut++;
            this.log(`${c.name} still ${c.state} after ${this.cfg.crawls.timeoutMs} ms; deleting it`);
          }
          await this.end(c);
        }
      }
      await sleep(1000);
    }
  }

  private async begin(): Promise<void> {
    const n = ++this.crawlSeq;
    const name = `soak-crawl-${String(n).padStart(4, '0')}`;
    const site = await startSite({ pages: this.cfg.crawls.pages, seed: n });
    const c: Crawl = { name, site, startedAt: Date.now(), state: 'adding' };
    this.crawls.add(c);
    this.counts.crawls.started++;
    const spec = {
      kind: 'crawl', seeds: [site.seed], maxDepth: 100, maxPages: 10_000, perHostRps: this.cfg.crawls.perHostRps, concurrency: 4, timeoutMs: 1500,
    };
    // An add that ended in an error may still have been applied: the get loop finds out.
    await this.request('add', () => this.client.add(name, spec));
  }

  /** end deletes a finished crawl (until it is gone), purges its results and closes its site. */
  private async end(c: Crawl): Promise<void> {
    for (let i = 0; i < 20 && !this.stopping; i++) {
      const r = await this.request('delete', () => this.client.delete(c.name));
      if (r.code === 'ok' || r.code === ErrorCode.NOT_FOUND) break;
      await sleep(1000);
    }
    this.counts.crawls.deleted++;
    try {
      const jsm = await this.client.nc.jetstreamManager({ timeout: 5000 });
      await jsm.streams.purge(RESULTS_STREAM, { filter: subjects.results(c.name) });
    } catch {
      this.counts.crawls.purgeErrors++;
    }
    await c.site.close().catch(() => undefined);
    this.crawls.delete(c);
  }
}
