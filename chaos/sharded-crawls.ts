// Sharded crawls under chaos: a crawl with `shards` (3 by default) over its
// own multi-host loopback site (test/fixtures/multisite.ts: 10 hosts on
// 127.0.0.2 …, each with its own request log) runs through the faults; when
// one completes, another starts under a new name on a new site, so some
// sharded crawl is running for the whole run. After the run the checker
// judges each completed crawl:
//
//   sharded-result-lost        a reachable page has no result in the stream
//   sharded-result-duplicated  a page has more than one result in the stream
//   shard-owner-overlap        two workers ran the same shard (name and id) at
//                              once, from the workers' task logs (chaos/runs.ts
//                              reads them: a run ends at its fence, not when the
//                              stop was logged). The run checker counts these
//                              among its overlaps already; listed here per
//                              crawl, not counted twice in the total.
//   host-over-limit            a host got more than perHostRps requests within
//                              one 1 s window [t, t + 1000 ms), from the site's
//                              own log: politeness held across every move of a
//                              shard, since a host belongs to one shard whichever
//                              worker runs it
//
// A window over the limit while a worker held in SIGSTOP past its lease ran
// again before its fence (a `resumed-past-lease` run of one of the crawl's
// shards, ±1 s) is a note, not a finding: no lease stops a paused process
// (check.ts says the same of its overlaps). Pages fetched more than once
// (a shard that moved fetches again what it held) are counted, not judged.

import { performance } from 'node:perf_hooks';
import type { NatsConnection } from 'nats';
import { startMultiSite, type MultiSite, type Request } from '#test/fixtures/multisite.js';
import { readResults } from '#platform/nats/results.js';
import { parseShard } from '#protocol/shards.js';
import type { GafferClient } from '#client/client.js';
import type { Death, Pause } from '#harness/faults.js';
import { sleep } from '#platform/clock.js';
import { buildRuns, findOverlaps, parseWorkerLog, type Activity, type Run, type TaskLine } from './runs.js';
import type { Workload } from './workload.js';

export interface ShardedCrawlFinding {
  kind: 'sharded-result-lost' | 'sharded-result-duplicated' | 'shard-owner-overlap' | 'host-over-limit';
  name: string;
  detail: string;
}

export interface ShardedCrawlConfig {
  /** Sharded crawls running at once (0: none). */
  concurrent: number;
  shards: number;
  hosts: number;
  pages: number;
  perHostRps: number;
}

/** What the checker counted, for the report. */
export interface ShardedCrawlCounts {
  started: number;
  completed: number;
  /** Crawls that failed for good (a shard's restarts ran out): a note each, not a finding; the next crawl starts anyway. */
  failed: number;
  pagesChecked: number;
  /** Shard runs (attempts) seen in the workers' logs, and those beyond each shard's first (moves and restarts). */
  shardRuns: number;
  moves: number;
  /** Requests the politeness check judged, and the most any host got within 1 s (the limit is perHostRps). */
  requests: number;
  busiestWindow: number;
  /** Pages fetched more than once (after a move), over all completed crawls. */
  refetched: number;
  /** URLs the crawls sent again for want of a receipt (a queue item lost): the shards' `resent`, summed. */
  resent: number;
}

/** noShardedCounts: the counts of no crawl. */
export const noShardedCounts = (): ShardedCrawlCounts => ({
  started: 0, completed: 0, failed: 0, pagesChecked: 0, shardRuns: 0, moves: 0, requests: 0, busiestWindow: 0, refetched: 0, resent: 0,
});

interface Crawl {
  name: string;
  site: MultiSite;
  /** Date.now() − performance.now() when the site started: the site's log times on the workers' clock. */
  wallOffset: number;
  state: string;
  /** Results per page path, read before the cluster stops. */
  results?: Map<string, number>;
  /** The shards' `resent`, summed (collect). */
  resent?: number;
  want?: Set<string>;
}

const pathOf = (url: string): string => {
  const u = new URL(url);
  return `${u.host} ${u.pathname}`;
};

/** maxInWindow: the most requests in any window [t, t + ms) starting at a request, and where it starts. */
export function maxInWindow(sorted: number[], ms: number): { count: number; at: number; to: number } {
  let best = { count: 0, at: 0, to: 0 };
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j]! < sorted[i]! + ms) j++;
    if (j - i > best.count) best = { count: j - i, at: sorted[i]!, to: sorted[j - 1]! };
  }
  return best;
}

export class ShardedCrawls {
  private readonly all: Crawl[] = [];
  private stopping = false;
  private loop: Promise<void> = Promise.resolve();
  private n = 0;

  constructor(
    private readonly wl: Workload,
    private readonly client: GafferClient,
    private readonly cfg: ShardedCrawlConfig,
    private readonly log: (s: string) => void,
  ) {}

  start(): void {
    if (this.cfg.concurrent > 0) this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      const active = this.all.filter((c) => c.state !== 'completed' && c.state !== 'failed');
      for (let i = active.length; i < this.cfg.concurrent && !this.stopping; i++) await this.begin();
      await this.poll(active);
      await sleep(1000);
    }
  }

  private async poll(crawls: Crawl[]): Promise<void> {
    for (const c of crawls) {
      const was = c.state;
      try {
        c.state = (await this.client.get(c.name)).state;
      } catch {
        // The cluster is mid-fault; ask again next round.
      }
      // A finished crawl's site is not needed any more; its log is kept for the check.
      if (c.state === 'completed' || c.state === 'failed') {
        if (was !== c.state) this.log(`${c.name} ${c.state}; its site (${c.site.hosts[0]}, …) closed`);
        await c.site.close().catch(() => undefined);
      }
    }
  }

  private async begin(): Promise<void> {
    const name = `scrawl-${String(++this.n).padStart(2, '0')}`;
    // No Crawl-delay, 429s or dead host: every host's limit is perHostRps, and every reachable page must come back.
    const site = await startMultiSite({ hosts: this.cfg.hosts, pages: this.cfg.pages, seed: 100 + this.n, crawlDelay: 0, throttled: [], unavailable: [], hang: false });
    const c: Crawl = { name, site, wallOffset: Date.now() - performance.now(), state: 'adding' };
    this.all.push(c);
    const rec = await this.wl.add(name, {
      kind: 'crawl', shards: this.cfg.shards, partitionBy: 'host', seeds: [site.seed], sameHost: false,
      maxDepth: 100, maxPages: 100_000, perHostRps: this.cfg.perHostRps, concurrency: 4, timeoutMs: 1500,
      // A send refused after 30 s of JetStream unavailable fails the attempt (it resumes from its checkpoint);
      // NATS faults back to back can do that more often than the default 3 restarts allow, as a long crawl should.
      restart: { attempts: 10, delayMs: 1000, maxDelayMs: 5000 },
    });
    if (rec.result !== 'ok') this.log(`${name}: add ended ${rec.result} (${rec.code ?? ''}); it may or may not exist`);
  }

  /** finish stops starting crawls and waits, up to timeoutMs, for the running ones to complete; returns notes. */
  async finish(timeoutMs: number): Promise<string[]> {
    this.stopping = true;
    await this.loop;
    const deadline = Date.now() + timeoutMs;
    for (const c of this.all) {
      let said = Date.now();
      while (c.state !== 'completed' && c.state !== 'failed' && Date.now() < deadline) {
        await this.poll([c]);
        // A crawl that takes long says where its shards are (a stall shows whether they are busy, or idle and not completed).
        if (Date.now() - said >= 10_000) {
          said = Date.now();
          await this.say(c);
        }
        if (c.state !== 'completed') await sleep(500);
      }
    }
    return this.all.filter((c) => c.state !== 'completed').map((c) => `${c.name} (sharded) is ${c.state} at the end of the run`);
  }

  private async say(c: Crawl): Promise<void> {
    try {
      const r = await this.client.get(c.name);
      const shards = (r.shards ?? []).map((x) => {
        const p = (x.progress ?? {}) as { fetched?: number; queued?: number; held?: number; unconfirmed?: number; resent?: number };
        const activity = x.idle === undefined ? 'not reported' : x.idle ? 'idle' : 'busy';
        return `${x.index} ${x.state} on ${x.worker ?? '-'} attempt ${x.attempt} ${activity} fetched ${p.fetched ?? '?'} queued ${p.queued ?? '?'} held ${p.held ?? '?'} unconfirmed ${p.unconfirmed ?? '?'} resent ${p.resent ?? '?'}`;
      });
      this.log(`${c.name} still ${r.state}: ${shards.join('; ')}`);
    } catch {
      // The cluster is mid-fault; said next time.
    }
  }

  /** collect reads every completed crawl's results from the stream; call after finish, while NATS is still up. */
  async collect(nc: NatsConnection): Promise<void> {
    for (const c of this.all.filter((x) => x.state === 'completed')) {
      c.want = new Set([...c.site.reachable()].map(pathOf));
      const got = await this.client.get(c.name).catch(() => undefined);
      const shards = ((got?.result ?? {}) as { shards?: Array<{ resent?: unknown }> }).shards ?? [];
      c.resent = shards.reduce((n, x) => n + (typeof x.resent === 'number' ? x.resent : 0), 0);
      c.results = new Map();
      for await (const r of readResults(nc, c.name)) {
        const p = pathOf((r.item as { url: string }).url);
        c.results.set(p, (c.results.get(p) ?? 0) + 1);
      }
    }
  }

  /** check judges every collected crawl against the workers' logs; call after the cluster stopped. */
  check(input: { logs: Record<string, string>; deaths: Death[]; pauses: Pause[]; endOfRun: number }): { findings: ShardedCrawlFinding[]; counts: ShardedCrawlCounts; notes: string[] } {
    const findings: ShardedCrawlFinding[] = [];
    const notes: string[] = [];
    const counts: ShardedCrawlCounts = { ...noShardedCounts(), started: this.all.length, failed: this.all.filter((c) => c.state === 'failed').length };
    const runs = this.shardRuns(input);
    for (const c of this.all) {
      const j = judgeCrawl({
        name: c.name, hosts: c.site.hosts, log: c.site.log, wallOffset: c.wallOffset, perHostRps: this.cfg.perHostRps,
        runs: runs.filter((r) => parseShard(r.name)?.name === c.name),
        ...(c.want && c.results ? { want: c.want, results: c.results } : {}),
      });
      findings.push(...j.findings);
      notes.push(...j.notes);
      if (c.want && c.results) {
        counts.completed++;
        counts.pagesChecked += c.want.size;
      }
      counts.shardRuns += j.shardRuns;
      counts.moves += j.moves;
      counts.requests += c.site.log.length;
      counts.busiestWindow = Math.max(counts.busiestWindow, j.busiestWindow);
      counts.refetched += j.refetched;
      counts.resent += c.resent ?? 0;
    }
    return { findings, counts, notes };
  }

  /** shardRuns: the run intervals of every shard of these crawls, from the workers' logs. */
  private shardRuns(input: { logs: Record<string, string>; deaths: Death[]; pauses: Pause[]; endOfRun: number }): Run[] {
    const names = new Set(this.all.map((c) => c.name));
    const lines: TaskLine[] = [];
    const activity: Activity[] = [];
    for (const [worker, text] of Object.entries(input.logs).sort()) {
      const p = parseWorkerLog(worker, text);
      lines.push(...p.lines.filter((l) => names.has(parseShard(l.name)?.name ?? '')));
      activity.push(...p.activity);
    }
    return buildRuns(lines, input.deaths, input.endOfRun, activity, input.pauses).runs;
  }

  async close(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.all.map((c) => c.site.close().catch(() => undefined)));
  }
}

/** One crawl as the checker sees it: its site's log and hosts, its shards' runs, and (once completed) what it should have stored and did. */
export interface CrawlEvidence {
  name: string;
  /** host:port by host index, as the site's log names hosts. */
  hosts: string[];
  log: Request[];
  /** Added to a log time (performance.now() of this process) gives the workers' clock (Date.now()). */
  wallOffset: number;
  perHostRps: number;
  runs: Run[];
  /** Completed crawls only: the reachable pages and the results per page, both as "host:port /path". */
  want?: Set<string>;
  results?: Map<string, number>;
}

/** judgeCrawl is the checker's verdict on one crawl (pure, for the unit tests). */
export function judgeCrawl(e: CrawlEvidence): { findings: ShardedCrawlFinding[]; notes: string[]; shardRuns: number; moves: number; busiestWindow: number; refetched: number } {
  const findings: ShardedCrawlFinding[] = [];
  const notes: string[] = [];
  for (const o of findOverlaps(e.runs).filter((x) => !x.runs.some((r) => r.end === 'resumed-past-lease'))) {
    findings.push({ kind: 'shard-owner-overlap', name: o.name, detail: `on ${o.workers.join(' and ')} for ${o.ms} ms from ${new Date(o.from).toISOString()}` });
  }
  const resumed = e.runs.filter((r) => r.end === 'resumed-past-lease');
  const byHost = new Map<number, number[]>();
  for (const r of e.log) byHost.set(r.host, [...(byHost.get(r.host) ?? []), r.at]);
  let busiestWindow = 0;
  for (const [host, times] of byHost) {
    const w = maxInWindow(times.sort((a, b) => a - b), 1000);
    busiestWindow = Math.max(busiestWindow, w.count);
    if (w.count <= e.perHostRps) continue;
    const from = w.at + e.wallOffset;
    const to = w.to + e.wallOffset;
    const what = `${e.hosts[host]}: ${w.count} requests within 1 s from ${new Date(from).toISOString()} (limit ${e.perHostRps})`;
    if (resumed.some((r) => r.from - 1000 <= to && from <= r.to + 1000)) notes.push(`${e.name} ${what}, while a worker resumed past its lease ran`);
    else findings.push({ kind: 'host-over-limit', name: e.name, detail: what });
  }
  // What the site served each page: a lost result's detail says whether the page was fetched at all.
  const served = new Map<string, number>();
  for (const r of e.log) {
    if (r.status !== 200 || r.path === '/robots.txt') continue;
    const k = `${e.hosts[r.host]} ${r.path}`;
    served.set(k, (served.get(k) ?? 0) + 1);
  }
  if (e.want && e.results) {
    for (const p of e.want) {
      if (e.results.has(p)) continue;
      const n = served.get(p) ?? 0;
      findings.push({ kind: 'sharded-result-lost', name: e.name, detail: `no result for ${p} (${n ? `the site served it ${n}×` : 'never fetched'})` });
    }
    for (const [p, n] of e.results) if (n > 1) findings.push({ kind: 'sharded-result-duplicated', name: e.name, detail: `${n} results for ${p}` });
  }
  return {
    findings,
    notes,
    shardRuns: e.runs.length,
    moves: e.runs.length - new Set(e.runs.map((r) => r.name)).size,
    busiestWindow,
    refetched: [...served.values()].filter((n) => n > 1).length,
  };
}
