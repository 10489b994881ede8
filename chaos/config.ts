// ChaosConfig: how many faults, which seed, and every timing, from the
// environment. Defaults are the full run (`npm run chaos`); CHAOS_QUICK=1
// shortens the gaps and deadlines for the run inside `npm test`.
//
//   CHAOS_FAULTS=30          faults to inject (at least 1)
//   CHAOS_SEED=n             seed for the fault sequence and the workload (default: random, printed)
//   CHAOS_QUICK=1            shorter gaps, recovery and run deadlines
//   CHAOS_OUT=path           where results.json goes (default chaos/results.json)
//   CHAOS_NAMES=40           size of the workload's name pool
//   CHAOS_INFLIGHT=3         client requests in flight at once
//   CHAOS_CLIENT_TIMEOUT_MS  one client call's deadline, retries included (default 15000)
//   CHAOS_RECOVER_MS         deadline for recovery after each fault (default 60000; quick 40000)
//   CHAOS_DEADLINE_MS        deadline for the whole fault phase (default 18 s a fault, at least 540000; quick 150000)
//   CHAOS_KEEP_LOGS=1        keep the cluster's log directory even when the run is clean
//   CHAOS_KINDS=a,b          inject only these fault kinds (for reproducing one; default: all)
//   CHAOS_PAUSE_MS=lo-hi     SIGSTOP durations in ms (default 500-4000; quick 500-3500)
//   CHAOS_CRAWLS=2           crawl resources running at once, each on its own loopback site (0: none)
//   CHAOS_SCHEDULES=2        scheduled resources firing throughout (overlap replace; 0: none)
//   CHAOS_SHARDED_CRAWLS=1   sharded crawls (3 shards, a 10-host site each) running at once, one after another (0: none)
//   CHAOS_NATS_NODES=3       nats-servers, routed into one cluster (1: a single server, and no kill-nats)

import { envNumber } from '#harness/env.js';
import { randomSeed } from '#harness/rng.js';
import { repoPath } from '#harness/runner.js';
import { FAULT_KINDS, faultKinds, KILL_NATS_MIN_NODES, type FaultKind, type FaultTimings } from '#harness/faults.js';

export interface ChaosConfig extends FaultTimings {
  faults: number;
  kinds: FaultKind[];
  seed: number;
  quick: boolean;
  out: string;
  keepLogs: boolean;
  cluster: { masters: number; workers: number; etcdMembers: number; natsNodes: number; ttlSeconds: number };
  workload: {
    names: number;
    inflight: number;
    clientTimeoutMs: number;
    /** Pause between one loop's requests: [min, max] ms. */
    thinkMs: [number, number];
    /** A name whose request ended ambiguously is left alone this long, and until a recovery after it. */
    quarantineMs: number;
  };
  /** Crawls under chaos (chaos/crawls.ts). */
  crawls: { concurrent: number; pages: number; perHostRps: number };
  /** Sharded crawls under chaos (chaos/sharded-crawls.ts). */
  shardedCrawls: { concurrent: number; shards: number; hosts: number; pages: number; perHostRps: number };
  /** Scheduled resources under chaos (chaos/schedules.ts). */
  schedules: { count: number; everySeconds: number };
  /** Workload time between a recovery and the next fault: [min, max] ms. */
  gapMs: [number, number];
  recoverMs: number;
  /** A name whose last request ended less than this before a convergence snapshot is not judged by it. */
  settleMs: number;
  deadlineMs: number;
  warmupMs: number;
}

const int = (env: NodeJS.ProcessEnv, key: string, fallback: number, min: number): number => envNumber(env, key, fallback, { min, whole: true });

function kinds(raw: string | undefined, natsNodes: number): FaultKind[] {
  if (!raw) return faultKinds(natsNodes);
  const out = raw.split(',').map((k) => k.trim()).filter(Boolean);
  for (const k of out) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new Error(`CHAOS_KINDS: unknown kind "${k}"; known: ${FAULT_KINDS.join(', ')}`);
    if (!faultKinds(natsNodes).includes(k as FaultKind)) throw new Error(`CHAOS_KINDS: ${k} needs CHAOS_NATS_NODES of ${KILL_NATS_MIN_NODES} or more, not ${natsNodes}`);
  }
  if (out.length === 0) throw new Error('CHAOS_KINDS names no kind');
  return out as FaultKind[];
}

function range(env: NodeJS.ProcessEnv, key: string, fallback: [number, number]): [number, number] {
  const raw = env[key];
  if (!raw) return fallback;
  const m = /^(\d+)-(\d+)$/.exec(raw);
  if (!m || Number(m[1]) > Number(m[2])) throw new Error(`${key} must look like 500-4000 (ms), not ${JSON.stringify(raw)}`);
  return [Number(m[1]), Number(m[2])];
}

export function chaosConfig(env: NodeJS.ProcessEnv = process.env): ChaosConfig {
  const quick = env.CHAOS_QUICK === '1';
  const natsNodes = int(env, 'CHAOS_NATS_NODES', 3, 1);
  const faults = int(env, 'CHAOS_FAULTS', 30, 1);
  return {
    faults,
    kinds: kinds(env.CHAOS_KINDS, natsNodes),
    seed: int(env, 'CHAOS_SEED', randomSeed(), 0),
    quick,
    out: env.CHAOS_OUT || repoPath('chaos', 'results.json'),
    keepLogs: env.CHAOS_KEEP_LOGS === '1',
    cluster: { masters: 3, workers: 4, etcdMembers: 3, natsNodes, ttlSeconds: 2 },
    workload: {
      names: int(env, 'CHAOS_NAMES', 40, 1),
      inflight: int(env, 'CHAOS_INFLIGHT', 3, 1),
      clientTimeoutMs: int(env, 'CHAOS_CLIENT_TIMEOUT_MS', 15000, 1000),
      thinkMs: [20, 200],
      quarantineMs: quick ? 12000 : 20000,
    },
    crawls: { concurrent: int(env, 'CHAOS_CRAWLS', 2, 0), pages: quick ? 40 : 150, perHostRps: quick ? 10 : 8 },
    // 10 hosts at 5/s: about 10 s a crawl when nothing goes wrong, so a run sees many crawls and many moves.
    shardedCrawls: { concurrent: int(env, 'CHAOS_SHARDED_CRAWLS', 1, 0), shards: 3, hosts: 10, pages: quick ? 200 : 400, perHostRps: 5 },
    schedules: { count: int(env, 'CHAOS_SCHEDULES', 2, 0), everySeconds: quick ? 3 : 5 },
    gapMs: quick ? [500, 1500] : [1000, 3000],
    killDownMs: quick ? [200, 1500] : [200, 3000],
    pauseMs: range(env, 'CHAOS_PAUSE_MS', quick ? [500, 3500] : [500, 4000]),
    natsDownMs: quick ? [0, 1000] : [0, 2000],
    natsKillDownMs: quick ? [200, 1500] : [200, 3000],
    etcdDownMs: quick ? [500, 1500] : [500, 3000],
    recoverMs: int(env, 'CHAOS_RECOVER_MS', quick ? 40000 : 60000, 1000),
    settleMs: 1500,
    // 18 s a fault (about 6 on a quiet machine, up to 13 on a busy one), so CHAOS_FAULTS=100 runs them all.
    deadlineMs: int(env, 'CHAOS_DEADLINE_MS', quick ? 150000 : Math.max(540000, faults * 18000), 1000),
    warmupMs: quick ? 1500 : 3000,
  };
}
