// The million part (BENCH_ONLY=million): BENCH_MILLION_N resources (default
// 1,000,000) on BENCH_MILLION_WORKERS workers (default 1,000, in pool
// processes of BENCH_MILLION_PER_POOL), applied in files of 1,000 through
// resource.apply, a few in flight. Reported: resources/s from the first apply
// to all running, CPU per resource over every process, the leader's heap per
// resource after a forced GC, the standby's memory, etcd's size before and
// after compaction, a single add's p99 at 1M against an empty cluster, a
// list page's p99, a worker SIGKILL and a leader SIGKILL at 1M, and the
// fleet's health. Check it at 20k first: BENCH_MILLION_N=20000.

import { join } from 'node:path';
import { logSize } from '#harness/logs.js';
import { performance } from 'node:perf_hooks';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { DEDUPE_WINDOW_MS } from '#actors/leader/core/dedupe-window.js';
import { LocalCluster } from '#devcluster/cluster.js';
import { ETCD_STORAGE_FLAGS, waitFor } from '#devcluster/servers.js';
import type { Child } from '#devcluster/child.js';
import { ContentType, json } from '#protocol/codec.js';
import { ClientSubject, Header, subjects } from '#protocol/subjects.js';
import { MAX_APPLY_ITEMS } from '#protocol/apply.js';
import type { BenchConfig } from './config.js';
import { sleep } from './load.js';
import { cpuMs, startPool, stopAll } from './procs.js';
import { served, type Served } from './probe.js';
import { watchTermEnd } from './terms.js';
import { benchConnect, request, runId } from './wire.js';
import { builtState, etcdSize, fleetHealth, heapAfterGc, running, sequential, status, twoMasters, type EtcdSize, type Latency } from './cluster-probes.js';

export interface MillionConfig {
  resources: number;
  workers: number;
  perPool: number;
  /** Apply requests in flight. */
  inflight: number;
  ttlSeconds: number;
  /** etcd's automatic compaction during the run (BENCH_MILLION_COMPACTION=off: none until the end's compact and defrag). */
  compaction: 'periodic' | 'off';
  /** Samples of the single-add and list-page latencies. */
  samples: number;
  /** How long the apply may take before the part reports how far it got. */
  limitMs: number;
}

export function millionConfig(env: NodeJS.ProcessEnv = process.env): MillionConfig {
  const num = (k: string, d: number, min: number): number => {
    const v = Number(env[k] ?? d);
    if (!Number.isInteger(v) || v < min) throw new Error(`${k} must be a whole number ≥ ${min}`);
    return v;
  };
  return {
    resources: num('BENCH_MILLION_N', 1_000_000, 1000),
    workers: num('BENCH_MILLION_WORKERS', 1000, 2),
    perPool: num('BENCH_MILLION_PER_POOL', 100, 1),
    inflight: num('BENCH_MILLION_INFLIGHT', 4, 1),
    ttlSeconds: num('BENCH_MILLION_TTL', 5, 2),
    compaction: env.BENCH_MILLION_COMPACTION === 'off' ? 'off' : 'periodic',
    samples: num('BENCH_MILLION_SAMPLES', 200, 10),
    limitMs: num('BENCH_MILLION_LIMIT_MS', 900_000, 10_000),
  };
}

export interface MillionResult {
  config: MillionConfig;
  pools: number;
  capacityPerWorker: number;
  workersUpMs: number;
  apply: {
    files: number;
    applied: number;
    refused: number;
    failedRequests: number;
    firstError?: string;
    /** First apply sent -> last answered, and -> every resource running. */
    answeredMs: number;
    allRunningMs: number;
    /** Resources per second from the first apply to all running: the C1M figure is 3,750. */
    ratePerSec: number;
    /** CPU of every process (masters, pools, nats-server, etcd, this one) from the first apply to all running, per resource. */
    cpuMsPerResource: number;
    /** The same less what the idle cluster used over as long (lease keepalives, probes, pings of 1,000 workers). */
    cpuMsPerResourceAboveIdle: number;
    /** CPU ms per second of the idle cluster, all processes, measured for IDLE_MS before the apply. */
    idleCpuMsPerSec: number;
    cpuMsByProc: Record<string, number>;
    /** Messages on worker.*.assign and events.resource.> per resource applied (the batching decision, docs/scale.md). */
    assignMsgsPerResource: number;
    eventMsgsPerResource: number;
  };
  memory: {
    leader: string;
    heap0: number;
    heapN: number;
    /** Live heap per resource after a forced GC, the dedupe window emptied (target ≤ 600). */
    bytesPerResource: number;
    leaderRss: number;
    standby: { id: string; heapUsed: number; rss: number };
  };
  /** compactError: why the end's compaction and defrag failed, if it did. */
  etcd: EtcdSize & { quotaBytes: number; compactError?: string };
  /** One resource.add at a time, on an empty cluster and at the full count (target p99 ratio ≤ 1.2). */
  singleAdd: { empty: Latency; full: Latency; p99Ratio: number };
  /** resource.list of one page of 1,000 after a random name, at the full count (target p99 ≤ 50 ms); the first (cold) page apart. */
  listPage: Latency & { coldMs: number };
  /** resource.get of one resource, sampled right after the pages: the request path's own latency on the loaded cluster. */
  getOne: Latency;
  /** A worker holding ~N/workers resources SIGKILLed: ms until every resource runs again (target ≤ 1,500). */
  workerKill: { resources: number; allRunningMs: number; error?: string };
  /** The leader SIGKILLed at the full count: ms until an add is served by the new leader, from the standby (target ≤ 2,000). */
  takeover: (Partial<Served> & { error?: string; built?: { source: string; buildMs: number } }) | undefined;
  fleet: { fences: number; leasesLost: number };
}

const enc = (v: unknown) => json.encode(v);
/** How long the idle cluster's CPU is sampled before the apply. */
const IDLE_MS = 5000;
/** How long after the takeover's first served add the fleet is watched before its health is counted. */
const OBSERVE_MS = 10_000;

const cpuOf = (pids: Record<string, number | undefined>): Record<string, number> => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)]));
const cpuSum = (a: Record<string, number>, b: Record<string, number>): number =>
  Object.keys(b).map((k) => b[k]! - (a[k] ?? NaN)).filter(Number.isFinite).reduce((x, y) => x + y, 0);

/** applyOne sends one file (a resource.apply) with its own request id, retrying within its deadline: a re-sent apply gets its first answer. */
async function applyOne(nc: NatsConnection, id: string, items: Array<{ name: string; spec: object }>): Promise<{ applied: number; refused: number }> {
  const h = natsHeaders();
  h.set(Header.contentType, ContentType.json);
  h.set(Header.requestId, id);
  const body = enc({ resources: items });
  let last: unknown;
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      const m = await nc.request(ClientSubject.apply, body, { timeout: 60_000, headers: h });
      const r = json.decode(m.data) as { ok: boolean; results?: Array<{ error?: unknown }>; error?: { code: string; message: string } };
      if (!r.ok) throw new Error(`${r.error?.code}: ${r.error?.message}`);
      const refused = r.results!.filter((x) => x.error).length;
      return { applied: items.length - refused, refused };
    } catch (err) {
      last = err;
      await sleep(500);
    }
  }
  throw last;
}

/** counting subscribes to a subject and counts its messages until stopped. */
function counting(nc: NatsConnection, subject: string): { n: () => number; stop: () => void } {
  let n = 0;
  const sub = nc.subscribe(subject, { callback: () => void n++ });
  return { n: () => n, stop: () => sub.unsubscribe() };
}

export async function million(_cfg: BenchConfig, log: (s: string) => void, m: MillionConfig = millionConfig()): Promise<MillionResult> {
  const N = m.resources;
  // One worker in a pool of its own: the one SIGKILLed, with its ~N/workers resources.
  const pools = Math.ceil((m.workers - 1) / m.perPool);
  const capacity = Math.ceil((N / m.workers) * 1.5);
  const cluster = await LocalCluster.start({
    masters: 0, workers: 0, ttlSeconds: m.ttlSeconds, etcdCompaction: m.compaction,
    // SIGWINCH writes a master's heap snapshot into its working directory: the way to see what a leader holds
    // mid-run (SIGUSR2 is the heap report, src/platform/heap.ts).
    env: { NODE_OPTIONS: '--expose-gc --max-old-space-size=6144 --heapsnapshot-signal=SIGWINCH' },
  });
  const children: Child[] = [];
  const nc = await benchConnect(cluster.natsUrl, 'bench-million');
  const pids = (): Record<string, number | undefined> => ({
    bench: process.pid,
    'nats-server': cluster.nats?.child.pid,
    ...Object.fromEntries((cluster.etcd?.members ?? []).map((e) => [e.name, e.child.pid])),
    ...Object.fromEntries([...cluster.masters].map(([id, c]) => [id, c.pid])),
    ...Object.fromEntries(children.map((c, i) => [`pool${i}`, c.pid])),
  });
  try {
    await twoMasters(cluster, nc);
    const t0 = performance.now();
    const victim = startPool(cluster, 'v', 1, capacity);
    children.push(victim);
    for (let p = 1; p <= pools; p++) children.push(startPool(cluster, `p${p}`, Math.min(m.perPool, m.workers - 1 - m.perPool * (p - 1)), capacity));
    await waitFor(`${m.workers} workers`, async () => (await status(nc, 5000)).workers.length === m.workers || undefined, 600_000, 1000);
    const workersUpMs = Math.round(performance.now() - t0);
    log(`million: ${m.workers} workers (${pools} pools of up to ${m.perPool}, and one alone) up after ${workersUpMs} ms`);
    const leader = cluster.masters.get('m1')!;
    const leaderLog = join(cluster.dir, 'm1.log');
    await sleep(2000);
    const heap0 = await heapAfterGc(leader, leaderLog);
    const add = (prefix: string) => (i: number) => request(nc, ClientSubject.add, { name: `${prefix}-${runId}-${i}` }, { gaffer: true, timeoutMs: 10000 }).then(() => undefined);
    const emptyAdd = await sequential(m.samples, add('single-e'));
    log(`million: single add on an empty cluster p50 ${emptyAdd.p50} ms, p99 ${emptyAdd.p99} ms`);

    // The apply: files of MAX_APPLY_ITEMS, `inflight` at a time.
    const files = Math.ceil(N / MAX_APPLY_ITEMS);
    const assigns = counting(nc, subjects.allWorkerAssign);
    const events = counting(nc, 'events.resource.>');
    const idle0 = cpuOf(pids());
    const tIdle = performance.now();
    await sleep(IDLE_MS);
    const idleCpuMsPerSec = Math.round((cpuSum(idle0, cpuOf(pids())) / (performance.now() - tIdle)) * 1000);
    const cpu0 = cpuOf(pids());
    const tApply = performance.now();
    let next = 0;
    let applied = 0;
    let refused = 0;
    let failedRequests = 0;
    let firstError: string | undefined;
    let lastLog = tApply;
    const lane = async (): Promise<void> => {
      for (let f = next++; f < files && performance.now() - tApply < m.limitMs; f = next++) {
        const items = Array.from({ length: Math.min(MAX_APPLY_ITEMS, N - f * MAX_APPLY_ITEMS) }, (_, j) => ({
          name: `m${String(f * MAX_APPLY_ITEMS + j).padStart(7, '0')}`,
          spec: { labels: { file: `f${f}` } },
        }));
        try {
          const r = await applyOne(nc, `million-${runId}-${f}`, items);
          applied += r.applied;
          refused += r.refused;
        } catch (err) {
          failedRequests++;
          firstError ??= (err as Error).message;
        }
        if (performance.now() - lastLog > 10_000) {
          lastLog = performance.now();
          log(`million: ${applied} applied after ${Math.round(lastLog - tApply)} ms`);
        }
      }
    };
    await Promise.all(Array.from({ length: m.inflight }, lane));
    const answeredMs = Math.round(performance.now() - tApply);
    const want = applied + emptyAdd.n;
    const allRunningMs = await waitFor('every resource running', async () => ((await running(nc)).running >= want ? Math.round(performance.now() - tApply) : undefined), Math.max(60_000, m.limitMs - answeredMs), 500).catch(() => NaN);
    const cpu1 = cpuOf(pids());
    const cpuMsByProc = Object.fromEntries(Object.keys(cpu1).map((k) => [k, cpu1[k]! - (cpu0[k] ?? NaN)]));
    const cpuTotal = cpuSum(cpu0, cpu1);
    const cpuAboveIdle = cpuTotal - (idleCpuMsPerSec * (Number.isFinite(allRunningMs) ? allRunningMs : performance.now() - tApply)) / 1000;
    assigns.stop();
    events.stop();
    const rate = Number.isFinite(allRunningMs) ? Math.round((applied / allRunningMs) * 1000) : NaN;
    log(`million: ${applied} applied (${refused} refused, ${failedRequests} requests failed) answered after ${answeredMs} ms, all running after ${allRunningMs} ms: ${rate}/s; ${(cpuTotal / Math.max(1, applied)).toFixed(3)} ms CPU per resource`);

    // Memory: wait the dedupe window out, so that what stays is the resources.
    await sleep(DEDUPE_WINDOW_MS + 5000);
    const heapN = await heapAfterGc(leader, leaderLog);
    const standby = await heapAfterGc(cluster.masters.get('m2')!, join(cluster.dir, 'm2.log'));
    const total = (await running(nc)).total;
    const bytesPerResource = Math.round((heapN.heapUsed - heap0.heapUsed) / Math.max(1, total));
    log(`million: leader heap ${Math.round(heap0.heapUsed / 1048576)} -> ${Math.round(heapN.heapUsed / 1048576)} MiB (${bytesPerResource} B/resource); standby heap ${Math.round(standby.heapUsed / 1048576)} MiB, RSS ${Math.round(standby.rss / 1048576)} MiB`);

    const fullAdd = await sequential(m.samples, add('single-f'));
    const t = performance.now();
    await request(nc, ClientSubject.list, { limit: 1000 }, { gaffer: true, timeoutMs: 30000 });
    const coldMs = Math.round(performance.now() - t);
    const listPage = await sequential(m.samples, (i) => request(nc, ClientSubject.list, { limit: 1000, after: `m${String((i * 7919) % N).padStart(7, '0')}` }, { gaffer: true, timeoutMs: 10000 }).then(() => undefined));
    // The same path with a reply of one resource: what of the page's latency is the page, and what the path through a loaded cluster.
    const getOne = await sequential(m.samples, (i) => request(nc, ClientSubject.get, { name: `m${String((i * 7919) % N).padStart(7, '0')}` }, { gaffer: true, timeoutMs: 10000 }).then(() => undefined));
    log(`million: at ${total}: single add p99 ${fullAdd.p99} ms (empty ${emptyAdd.p99} ms); list page p50 ${listPage.p50} p99 ${listPage.p99} ms (cold ${coldMs} ms); get p50 ${getOne.p50} p99 ${getOne.p99} ms`);

    // The size now; compaction and defrag come last, since a defrag blocks etcd (leases included) for seconds at this size.
    const etcdAtFull = await etcdSize(cluster.etcdEndpoints, false);
    log(`million: etcd db ${Math.round(etcdAtFull.dbSize / 1048576)} MiB (${Math.round(etcdAtFull.dbSizeInUse / 1048576)} in use)`);

    // A worker with its share of resources SIGKILLed: every resource running again.
    const victimId = 'v-w1';
    const held = (await status(nc, 10000)).workers.find((w) => w.id === victimId)?.resources ?? 0;
    const want2 = (await running(nc)).total;
    const tKill = performance.now();
    victim.signal('SIGKILL');
    const workerKill = await waitFor('the victim\'s resources running elsewhere', async () => {
      const s = await status(nc, 10000);
      return !s.workers.some((w) => w.id === victimId) && (s.resources?.byState.running ?? 0) >= want2 ? Math.round(performance.now() - tKill) : undefined;
    }, 120_000, 50).then((ms) => ({ resources: held, allRunningMs: ms }), (err: Error) => ({ resources: held, allRunningMs: NaN, error: err.message }));
    log(`million: worker SIGKILL holding ${held}: all running again after ${workerKill.allRunningMs} ms`);

    // The leader SIGKILLed: the standby takes over.
    let takeover: MillionResult['takeover'];
    try {
      const term = await watchTermEnd(cluster.etcdEndpoints, 'm1');
      const m2Log = join(cluster.dir, 'm2.log');
      const from = logSize(m2Log);
      const tk = performance.now();
      leader.signal('SIGKILL');
      try {
        takeover = await served(nc, tk, term, { prefix: `mk-${runId}`, perCallMs: 10000, limitMs: 60000 });
      } finally {
        await term.close();
      }
      const built = builtState(m2Log, from);
      if (built) takeover = { ...takeover, built };
      // A leader change makes every worker read its assignments again: the fleet's health counts what that did too.
      await sleep(OBSERVE_MS);
      log(`million: leader SIGKILL at ${total}: served by the new leader after ${takeover.servedMs} ms (state from ${built?.source ?? '?'} in ${built?.buildMs ?? '?'} ms)`);
    } catch (err) {
      takeover = { error: (err as Error).message };
    }
    const fleet = fleetHealth(['v', ...Array.from({ length: pools }, (_, i) => `p${i + 1}`)].map((name) => join(cluster.dir, `${name}.log`)));
    let compactError: string | undefined;
    const compacted = await etcdSize(cluster.etcdEndpoints, true).catch((err: unknown) => void (compactError = (err as Error).message));
    const etcd = {
      ...etcdAtFull,
      ...(compacted?.compacted ? { compacted: compacted.compacted } : {}),
      ...(compactError ? { compactError } : {}),
      quotaBytes: Number(ETCD_STORAGE_FLAGS[1]),
    };
    log(
      compactError
        ? `million: etcd compaction and defrag failed: ${compactError}`
        : `million: etcd after compaction and defrag ${Math.round((etcd.compacted?.dbSize ?? NaN) / 1048576)} MiB (${etcd.compacted?.ms ?? '?'} ms)`,
    );
    return {
      config: m,
      pools,
      capacityPerWorker: capacity,
      workersUpMs,
      apply: {
        files, applied, refused, failedRequests, ...(firstError ? { firstError } : {}),
        answeredMs, allRunningMs, ratePerSec: rate,
        cpuMsPerResource: Math.round((cpuTotal / Math.max(1, applied)) * 1000) / 1000,
        cpuMsPerResourceAboveIdle: Math.round((cpuAboveIdle / Math.max(1, applied)) * 1000) / 1000,
        idleCpuMsPerSec,
        cpuMsByProc,
        assignMsgsPerResource: Math.round((assigns.n() / Math.max(1, applied)) * 100) / 100,
        eventMsgsPerResource: Math.round((events.n() / Math.max(1, applied)) * 100) / 100,
      },
      memory: { leader: 'm1', heap0: heap0.heapUsed, heapN: heapN.heapUsed, bytesPerResource, leaderRss: heapN.rss, standby: { id: 'm2', heapUsed: standby.heapUsed, rss: standby.rss } },
      etcd,
      singleAdd: { empty: emptyAdd, full: fullAdd, p99Ratio: Math.round((fullAdd.p99 / emptyAdd.p99) * 100) / 100 },
      listPage: { ...listPage, coldMs },
      getOne,
      workerKill,
      takeover,
      fleet,
    };
  } finally {
    await nc.close().catch(() => undefined);
    await stopAll(children);
    await cluster.stop(process.env.BENCH_KEEP_LOGS === '1');
  }
}
