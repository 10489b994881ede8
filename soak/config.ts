// SoakConfig: how long, how hard, which faults and which thresholds, from the
// environment. Every knob is listed in soak/README.md.
//
//   SOAK_MINUTES=10                run length (the load phase), minutes; fractions allowed
//   SOAK_SECONDS                   the same in seconds (wins over SOAK_MINUTES; for the quick test)
//   SOAK_SAMPLE_SECONDS=10         sampling interval
//   SOAK_FAULT_SECONDS=30          one fault every this many seconds (0: no faults)
//   SOAK_QUIET_SECONDS=20          samples of a process this long after a fault on it are not fitted
//   SOAK_KINDS=a,b                 fault kinds (default: SOAK_DEFAULT_KINDS, the chaos kinds a single nats-server cluster can take)
//   SOAK_WITNESSES=m1,w1           processes no fault kills (they are paused, drained and see everything else); '' for none
//   SOAK_SEED=n                    seed for the fault sequence and the load (default random, printed)
//   SOAK_OUT=dir                   where soak.json and soak.svg go (default soak/results)
//   SOAK_MASTERS=3 SOAK_WORKERS=3  cluster size (etcd has 3 members, nats-server one)
//   SOAK_INFLIGHT=2                add/delete loops; SOAK_NAMES=30 their name pool
//   SOAK_CRAWLS=2                  crawls at once, each on its own loopback site (0: none)
//   SOAK_CRAWL_PAGES=100           pages per crawl site
//   SOAK_COMPACT_SECONDS=60        compact etcd this often, as production auto-compaction would (0: never)
//   SOAK_ETCD_SNAPSHOT_COUNT=1000  etcd's --snapshot-count (via ETCD_SNAPSHOT_COUNT), so its in-memory raft log levels off early
//   SOAK_MAX_RSS_MIB_PER_MIN=1     thresholds: fitted slope above which a series fails
//   SOAK_MAX_HEAP_MIB_PER_MIN=0.5
//   SOAK_MAX_FDS_PER_MIN=0.5
//   SOAK_MAX_SUBS_PER_MIN=0.5
//   SOAK_MIN_FIT_MINUTES=4         judge only fit windows (second halves) at least this long
//   SOAK_FLOOR_SECONDS=60          fit each bucket's lowest sample, buckets this long (0: every sample)
//   SOAK_MIN_MAJOR_GCS=2           judge a gaffer process's heap and RSS only if the window holds this many major GCs (0: always)
//   SOAK_MIN_T=3                   a slope above its threshold fails only this many standard errors above zero (0: always)
//   SOAK_KEEP_LOGS=1               keep the cluster's log directory even when the run passes

import { FAULT_KINDS, type FaultKind, type FaultTimings } from '#harness/faults.js';
import { envNumber } from '#harness/env.js';
import { randomSeed } from '#harness/rng.js';
import { repoPath } from '#harness/runner.js';

export const METRICS = ['rss', 'heap', 'fds', 'subs'] as const;
export type Metric = (typeof METRICS)[number];

/** What each metric is, its unit, and the env var of its threshold. */
export const METRIC_INFO: Record<Metric, { title: string; unit: string; env: string; fallback: number }> = {
  rss: { title: 'RSS', unit: 'MiB', env: 'SOAK_MAX_RSS_MIB_PER_MIN', fallback: 1 },
  heap: { title: 'V8 heap used', unit: 'MiB', env: 'SOAK_MAX_HEAP_MIB_PER_MIN', fallback: 0.5 },
  fds: { title: 'open file descriptors', unit: 'fds', env: 'SOAK_MAX_FDS_PER_MIN', fallback: 0.5 },
  subs: { title: 'NATS subscriptions', unit: 'subs', env: 'SOAK_MAX_SUBS_PER_MIN', fallback: 0.5 },
};

export interface SoakConfig {
  durationMs: number;
  sampleMs: number;
  /** 0: no faults. */
  faultEveryMs: number;
  quietMs: number;
  kinds: FaultKind[];
  /** Never killed by a fault: their series span the run. */
  witnesses: string[];
  seed: number;
  outDir: string;
  keepLogs: boolean;
  cluster: { masters: number; workers: number; etcdMembers: number; ttlSeconds: number };
  load: { inflight: number; names: number; thinkMs: [number, number]; readEveryMs: number; clientTimeoutMs: number };
  crawls: { concurrent: number; pages: number; perHostRps: number; timeoutMs: number };
  compactEveryMs: number;
  /** etcd keeps this many raft entries (plus 5000) in memory before a snapshot truncates them. */
  etcdSnapshotCount: number;
  /** Units per minute, per metric. */
  thresholds: Record<Metric, number>;
  minWindowMin: number;
  minPoints: number;
  minT: number;
  /** Minutes of neighbours the slope's standard error allows for (Newey-West). */
  lagMin: number;
  /** Fit each bucket's lowest sample, buckets this many minutes long; 0: every sample. */
  floorMin: number;
  minMajorGcs: number;
}

const num = (env: NodeJS.ProcessEnv, key: string, fallback: number, min: number, whole = false): number => envNumber(env, key, fallback, { min, whole });

/**
 * The chaos Injector's kinds that fit the soak's cluster (one nats-server,
 * three etcd members), named here rather than taken wholesale from
 * FAULT_KINDS: a kind added there for another topology stays out until
 * named (SOAK_KINDS can name any).
 */
export const SOAK_DEFAULT_KINDS: readonly FaultKind[] = [
  'kill-leader', 'kill-follower', 'kill-worker',
  'pause-leader', 'pause-follower', 'pause-worker',
  'restart-nats', 'restart-etcd',
  'drain-worker',
];

/** How long the soak's faults keep their target down (ms): the full chaos run's ranges. */
export const SOAK_FAULT_TIMINGS: FaultTimings = {
  killDownMs: [200, 3000],
  pauseMs: [500, 4000],
  natsDownMs: [0, 2000],
  natsKillDownMs: [200, 3000],
  etcdDownMs: [500, 3000],
};

function kinds(raw: string | undefined): FaultKind[] {
  if (!raw) return [...SOAK_DEFAULT_KINDS];
  const out = raw.split(',').map((k) => k.trim()).filter(Boolean);
  for (const k of out) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new Error(`SOAK_KINDS: unknown kind "${k}"; known: ${FAULT_KINDS.join(', ')}`);
  }
  if (out.length === 0) throw new Error('SOAK_KINDS names no kind');
  return out as FaultKind[];
}

export function soakConfig(env: NodeJS.ProcessEnv = process.env): SoakConfig {
  const seconds = env.SOAK_SECONDS ? num(env, 'SOAK_SECONDS', 600, 1) : num(env, 'SOAK_MINUTES', 10, 0.05) * 60;
  const thresholds = {} as Record<Metric, number>;
  // A negative threshold is allowed: it makes any series fail (to see the failure path).
  for (const m of METRICS) thresholds[m] = num(env, METRIC_INFO[m].env, METRIC_INFO[m].fallback, -Infinity);
  return {
    durationMs: Math.round(seconds * 1000),
    sampleMs: Math.round(num(env, 'SOAK_SAMPLE_SECONDS', 10, 1) * 1000),
    faultEveryMs: Math.round(num(env, 'SOAK_FAULT_SECONDS', 30, 0) * 1000),
    quietMs: Math.round(num(env, 'SOAK_QUIET_SECONDS', 20, 0) * 1000),
    kinds: kinds(env.SOAK_KINDS),
    witnesses: (env.SOAK_WITNESSES ?? 'm1,w1').split(',').map((x) => x.trim()).filter(Boolean),
    seed: num(env, 'SOAK_SEED', randomSeed(), 0, true),
    outDir: env.SOAK_OUT || repoPath('soak', 'results'),
    keepLogs: env.SOAK_KEEP_LOGS === '1',
    cluster: {
      masters: num(env, 'SOAK_MASTERS', 3, 1, true),
      workers: num(env, 'SOAK_WORKERS', 3, 1, true),
      etcdMembers: 3,
      ttlSeconds: 2,
    },
    load: {
      inflight: num(env, 'SOAK_INFLIGHT', 2, 0, true),
      names: num(env, 'SOAK_NAMES', 30, 1, true),
      thinkMs: [50, 250],
      readEveryMs: 1000,
      clientTimeoutMs: 10000,
    },
    crawls: {
      concurrent: num(env, 'SOAK_CRAWLS', 2, 0, true),
      pages: num(env, 'SOAK_CRAWL_PAGES', 100, 1, true),
      perHostRps: 10,
      timeoutMs: 5 * 60_000,
    },
    compactEveryMs: Math.round(num(env, 'SOAK_COMPACT_SECONDS', 60, 0) * 1000),
    etcdSnapshotCount: num(env, 'SOAK_ETCD_SNAPSHOT_COUNT', 1000, 1, true),
    thresholds,
    minWindowMin: num(env, 'SOAK_MIN_FIT_MINUTES', 4, 0),
    minPoints: 4,
    minT: num(env, 'SOAK_MIN_T', 3, 0),
    lagMin: 1,
    floorMin: num(env, 'SOAK_FLOOR_SECONDS', 60, 0) / 60,
    minMajorGcs: num(env, 'SOAK_MIN_MAJOR_GCS', 2, 0, true),
  };
}
