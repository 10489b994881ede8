// Scale: many resources over many workers. Workers run as Worker actors in a
// few worker-pool processes. We fill in stages (128 adds in flight), and at
// each checkpoint time resource.list and sample the leader's resident memory;
// then we take the leader away (SIGTERM, then SIGKILL) and time the first
// successful add. Bounded by time: a fill that runs out of time reports how
// far it got.

import { performance } from 'node:perf_hooks';
import { DEDUPE_WINDOW_MS } from '#actors/leader/core/dedupe-window.js';
import { LeaderLog } from '#platform/log.js';
import type { NatsConnection } from 'nats';
import { LocalCluster } from '#devcluster/cluster.js';
import { waitFor } from '#devcluster/servers.js';
import { ClientSubject, subjects } from '#protocol/subjects.js';
import { json } from '#protocol/codec.js';
import type { WorkerStatusResult } from '#protocol/messages.js';
import type { Child } from '#devcluster/child.js';
import type { BenchConfig } from './config.js';
import { median } from '#lib/stats.js';
import { linesSince, logPath, logSize } from '#harness/logs.js';
import { runLoad, sleep } from './load.js';
import { served, type Served } from './probe.js';
import { watchTermEnd } from './terms.js';
import { rssBytes, startPool, stopAll } from './procs.js';
import { benchConnect, request, runId } from './wire.js';
import { builtState, fleetHealth, heapAfterGc, status, twoMasters } from './cluster-probes.js';

export interface ListSample {
  resources: number;
  ok: boolean;
  ms: number;
  bytes?: number;
  error?: string;
}
export interface Checkpoint {
  resources: number;
  /** Adding time so far (list and memory samples excluded). */
  atMs: number;
  leaderRssBytes: number;
  list: ListSample;
}
export interface Takeover extends Partial<Served> {
  signal: string;
  resources: number;
  killed?: string;
  newLeader?: string;
  /** events.leader.elected seen from the break until observeMs after the first served add (1 = a clean takeover). */
  elections?: number;
  observeMs?: number;
  /** Where the new leader's state came from (its 'leader built state' line): the warm standby or a read of etcd, and how long the build took. */
  built?: { source: string; buildMs: number; readMs?: number };
  /** Why there is no (complete) measurement, e.g. the cluster never settled. */
  error?: string;
}
export interface ScaleResult {
  target: number;
  workers: number;
  pools: number;
  capacityPerWorker: number;
  workersUpMs: number;
  added: number;
  reachedTarget: boolean;
  fillMs: number;
  addRate: number;
  fillErrors: number;
  fillFirstError?: string;
  /** ms after the fill until every resource ran on a worker (polled), NaN if not within the bound. */
  convergedMs: number;
  checkpoints: Checkpoint[];
  memory: {
    measure: string;
    leader: string;
    rss0: number;
    rssN: number;
    /** VmRSS growth per resource: garbage and allocator slack included. */
    rssBytesPerResource: number;
    /** V8 heap after a forced GC, with 0 resources and after the fill once the dedupe window has emptied. */
    heap0: number;
    heapN: number;
    /** The figure judged: live heap per resource, the dedupe window excluded (NaN if the leader changed meanwhile). */
    bytesPerResource: number;
    /** Why bytesPerResource is not measured. */
    note?: string;
    /** Right after the fill: the dedupe window's entries and what they held beyond the resources (heap after the fill minus heapN). */
    dedupe: { entries: number; bytes: number; bytesPerEntry: number };
  };
  takeover: Takeover[];
  /**
   * Over the whole part, from the pools' logs: worker incarnations that
   * fenced themselves, and those whose lease then expired on the server
   * (every task restarted). A healthy fill and takeover has none.
   */
  fleet: { fences: number; leasesLost: number };
}

/** Where each master's log stood (bytes) when it was last started: its lines since then are this incarnation's. */
const startedAt = new Map<string, number>();

/** standbyReady: the master's standby has logged that it is ready since `from`. */
function standbyReady(logFile: string, from: number): boolean {
  return linesSince(logFile, from).lines.some((line) => line.includes(`"${LeaderLog.standbyReady}"`));
}

/** rss takes the median of a few samples of a process's VmRSS. */
async function rss(pid: number | undefined): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < 5; i++) {
    xs.push(rssBytes(pid));
    await sleep(200);
  }
  return median(xs) ?? NaN;
}

async function listOnce(nc: NatsConnection, resources: number): Promise<ListSample> {
  const t = performance.now();
  try {
    const m = await nc.request(ClientSubject.list, json.encode({}), { timeout: 15000 });
    const ms = Math.round((performance.now() - t) * 10) / 10;
    const r = json.decode(m.data) as { ok?: boolean; error?: { code: string; message: string } };
    if (r.ok !== true) return { resources, ok: false, ms, bytes: m.data.byteLength, error: `${r.error?.code}: ${r.error?.message}` };
    return { resources, ok: true, ms, bytes: m.data.byteLength };
  } catch (err) {
    return { resources, ok: false, ms: Math.round(performance.now() - t), error: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

/** listLatency: the median of 3 lists, or the first failure (a failed list can take its whole deadline). */
async function listLatency(nc: NatsConnection, resources: number): Promise<ListSample> {
  const xs: ListSample[] = [];
  for (let i = 0; i < 3; i++) {
    const s = await listOnce(nc, resources);
    if (!s.ok) return s;
    xs.push(s);
  }
  return { ...xs[0]!, ms: median(xs.map((x) => x.ms)) ?? NaN };
}

async function allRunning(nc: NatsConnection, workerIds: string[], want: number): Promise<boolean> {
  const counts = await Promise.all(
    workerIds.map((w) =>
      nc
        .request(subjects.workerStatus(w), json.encode({}), { timeout: 3000 })
        .then((m) => (json.decode(m.data) as WorkerStatusResult).running.length)
        .catch(() => 0),
    ),
  );
  return counts.reduce((a, b) => a + b, 0) >= want;
}

/**
 * takeoverOnce waits for a steady 2-master cluster, takes its leader away with
 * `signal`, times the first add served by a new leader, then keeps watching
 * elections for observeMs (a leader that keeps losing its lease shows up
 * here), and restarts the old master as a follower. Throws if the cluster does
 * not settle, before or after.
 */
async function takeoverOnce(
  cluster: LocalCluster,
  nc: NatsConnection,
  signal: 'SIGTERM' | 'SIGKILL',
  resources: number,
  observeMs: number,
  log: (s: string) => void,
): Promise<Takeover> {
  const s0 = await waitFor('a steady leader that sees both masters', async () => {
    const s = await status(nc, 5000);
    return s.masters.length === 2 ? s : undefined;
  }, 60000);
  // A follower restarted by the last takeover reads 100k records into its standby first: a takeover before that waits for the read.
  if (process.env.GAFFER_STANDBY !== 'off') {
    for (const id of cluster.masters.keys()) {
      if (id === s0.leader) continue;
      const file = logPath(cluster.dir, id);
      await waitFor(`${id}'s standby to be ready`, async () => standbyReady(file, startedAt.get(id) ?? 0), 60000).catch(() => log(`scale: ${id}'s standby was not ready within 60 s; taking over anyway`));
    }
  }
  await sleep(500);
  const child = cluster.masters.get(s0.leader)!;
  const logSizes = new Map([...cluster.masters.keys()].map((id) => [id, logSize(logPath(cluster.dir, id))]));
  let elections = 0;
  const sub = nc.subscribe(subjects.event('leader.elected'), { callback: () => void elections++ });
  const term = await watchTermEnd(cluster.etcdEndpoints, s0.leader);
  await nc.flush();
  const t = performance.now();
  child.signal(signal);
  let s: Served;
  try {
    s = await served(nc, t, term, { prefix: `st-${runId}-${signal}`, perCallMs: 10000, limitMs: 60000 });
    await sleep(Math.max(0, t + (Number.isFinite(s.servedMs) ? s.servedMs : 0) + observeMs - performance.now()));
  } finally {
    sub.unsubscribe();
    await term.close();
  }
  await Promise.race([child.exited(), sleep(15000)]);
  await child.kill();
  const after = await status(nc, 10000).catch(() => undefined);
  log(`scale: leader ${signal} at ${resources} resources -> new leader served after ${s.servedMs} ms (term end ${s.termEndMs} ms, single client ${s.singleMs} ms, worst wait ${s.worstMs} ms); ${elections} elections until ${observeMs} ms after that`);
  startedAt.set(s0.leader, logSize(logPath(cluster.dir, s0.leader)));
  cluster.startMaster(s0.leader);
  const newLeader = after?.leader ?? '?';
  const built = builtState(logPath(cluster.dir, newLeader), logSizes.get(newLeader) ?? 0);
  if (built) log(`scale: the new leader built its state from ${built.source} in ${built.buildMs} ms${built.readMs !== undefined ? ` after a ${built.readMs} ms read` : ''}`);
  return { signal, resources, killed: s0.leader, newLeader, elections, observeMs, ...(built ? { built } : {}), ...s };
}

export async function scale(cfg: BenchConfig, log: (s: string) => void): Promise<ScaleResult> {
  const { resources: target, workers, pools, inflight, limitMs, checkpoints } = cfg.scale;
  const capacity = Math.ceil((target / workers) * 1.5);
  // --expose-gc: the leader's heap is measured after a forced GC, so garbage does not count.
  const cluster = await LocalCluster.start({ masters: 0, workers: 0, ttlSeconds: cfg.ttlSeconds, env: { NODE_OPTIONS: '--expose-gc' } });
  const poolChildren: Child[] = [];
  const nc = await benchConnect(cluster.natsUrl, 'bench-scale');
  try {
    await twoMasters(cluster, nc);
    const t0 = performance.now();
    const per = Math.ceil(workers / pools);
    for (let p = 1; p <= pools; p++) poolChildren.push(startPool(cluster, `p${p}`, Math.min(per, workers - per * (p - 1)), capacity));
    const st = await waitFor(`${workers} workers`, async () => {
      const s = await status(nc, 2000);
      return s.workers.length === workers ? s : undefined;
    }, 180000);
    const workersUpMs = Math.round(performance.now() - t0);
    const workerIds = st.workers.map((w) => w.id);
    log(`scale: ${workers} workers in ${pools} pools up after ${workersUpMs} ms`);
    const leader = cluster.masters.get(st.leader)!;
    await sleep(1000);
    const leaderLog = logPath(cluster.dir, st.leader);
    const rss0 = await rss(leader.pid);
    const heap0 = await heapAfterGc(leader, leaderLog);

    const checks: Checkpoint[] = [];
    let added = 0;
    let errors = 0;
    let firstError: string | undefined;
    /** Time spent adding, without the list and memory samples in between. */
    let fillMs = 0;
    let named = 0;
    for (const cp of checkpoints) {
      const left = limitMs - fillMs;
      if (left <= 0 || added >= cp) break;
      // Names from one counter across checkpoints: a failed add's index is not reused, so no add finds its name taken.
      const cell = await runLoad({ inflight, count: cp - added, limitMs: left }, () =>
        request(nc, ClientSubject.add, { name: `s-${runId}-${named++}` }, { gaffer: true, timeoutMs: 10000 }).then(() => undefined),
      );
      added += cell.totalOk;
      fillMs += cell.windowMs;
      errors += cell.errors;
      firstError ??= cell.firstError;
      const atMs = Math.round(fillMs);
      const list = await listLatency(nc, added);
      const c: Checkpoint = { resources: added, atMs, leaderRssBytes: rssBytes(leader.pid), list };
      checks.push(c);
      log(`scale: ${added} resources after ${atMs} ms; list ${list.ok ? `${list.ms} ms, ${list.bytes} bytes` : `FAILED after ${list.ms} ms (${list.error})`}; leader RSS ${Math.round(c.leaderRssBytes / 1048576)} MiB`);
      if (cell.timedOut) break;
    }
    const conv0 = performance.now();
    // Every 250 ms, not 50: each round asks every worker for its status, 14 MB
    // of JSON at 100k, and asked nonstop it kept the pools too busy for their
    // lease keepalives (a whole pool's leases lapsed once, right after a fill).
    const converged = await waitFor('every resource running', () => allRunning(nc, workerIds, added), cfg.quick ? 30000 : 120000, 250)
      .then(() => Math.round(performance.now() - conv0))
      .catch(() => NaN);
    await sleep(2000);
    const rssN = await rss(leader.pid);
    const filled = await heapAfterGc(leader, leaderLog);
    // The dedupe window holds every write of the last 60 s: wait it out, so what stays is the resources.
    // (Not in quick mode: a minute the smoke run in npm test has no use for.)
    // Each forced collection stops the leader for most of a second at 100k: wait out the window first, then collect.
    const emptied = cfg.quick
      ? filled
      : await sleep(DEDUPE_WINDOW_MS).then(() =>
          waitFor('the dedupe window to empty', async () => {
            const h = await heapAfterGc(leader, leaderLog);
            return h.dedupeEntries === 0 ? h : (await sleep(10_000), undefined);
          }, 120000).catch(() => filled),
        );
    const dedupeBytes = Math.max(0, filled.heapUsed - emptied.heapUsed);
    // The heap is the first leader's: if another master leads now, its figures compare nothing.
    const leaderNow = (await status(nc, 5000).catch(() => undefined))?.leader;
    const stillLeads = leaderNow === st.leader;
    log(
      `scale: all ${added} running ${converged} ms after the fill; leader RSS ${Math.round(rss0 / 1048576)} -> ${Math.round(rssN / 1048576)} MiB; ` +
        `heap after GC ${Math.round(heap0.heapUsed / 1048576)} -> ${Math.round(emptied.heapUsed / 1048576)} MiB (${filled.dedupeEntries} dedupe entries held ${Math.round(dedupeBytes / 1048576)} MiB more)`,
    );

    const takeover: Takeover[] = [];
    let settled = true;
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      if (!settled) {
        takeover.push({ signal, resources: added, error: 'skipped: the cluster had not settled after the previous takeover' });
        continue;
      }
      try {
        takeover.push(await takeoverOnce(cluster, nc, signal, added, cfg.quick ? 3000 : 10000, log));
      } catch (err) {
        settled = false;
        takeover.push({ signal, resources: added, error: (err as Error).message });
        log(`scale: leader ${signal} at ${added} resources: ${(err as Error).message}`);
      }
    }
    const fleet = fleetHealth(poolChildren.map((_, i) => logPath(cluster.dir, `p${i + 1}`)));
    log(`scale: over the part, ${fleet.fences} worker incarnations fenced themselves, ${fleet.leasesLost} lost their lease`);
    return {
      target,
      workers,
      pools,
      capacityPerWorker: capacity,
      workersUpMs,
      added,
      reachedTarget: added >= target,
      fillMs: Math.round(fillMs),
      addRate: fillMs > 0 ? Math.round((added / fillMs) * 1000) : 0,
      fillErrors: errors,
      ...(firstError !== undefined ? { fillFirstError: firstError } : {}),
      convergedMs: converged,
      checkpoints: checks,
      memory: {
        measure: 'V8 heap used by the leader after a forced GC (node --expose-gc, SIGUSR2), once the dedupe window has emptied, vs. with 0 resources; VmRSS beside it',
        leader: st.leader,
        rss0,
        rssN,
        rssBytesPerResource: added > 0 ? Math.round((rssN - rss0) / added) : NaN,
        heap0: heap0.heapUsed,
        heapN: emptied.heapUsed,
        bytesPerResource: added > 0 && stillLeads ? Math.round((emptied.heapUsed - heap0.heapUsed) / added) : NaN,
        ...(stillLeads ? {} : { note: `not measured: ${st.leader} led at the start, ${leaderNow ?? 'nobody'} leads now` }),
        dedupe: { entries: filled.dedupeEntries, bytes: dedupeBytes, bytesPerEntry: filled.dedupeEntries > 0 ? Math.round(dedupeBytes / filled.dedupeEntries) : 0 },
      },
      takeover,
      fleet,
    };
  } finally {
    await nc.close().catch(() => undefined);
    await stopAll(poolChildren);
    await cluster.stop(cfg.keepLogs);
  }
}
