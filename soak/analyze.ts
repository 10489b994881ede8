// From samples to verdicts, pure: split every metric into series, mark the
// samples taken during or shortly after a fault on their process, and judge
// each series (soak/fit.ts).
//
// A series is one process incarnation (id and pid: a process restarted by a
// fault starts a new series, and nothing is fitted across a restart) and, for
// a master, one role: leading and following are two steady states (the
// leader holds the whole model, the dedupe window and the commit pipeline,
// tens of MiB more than a follower, and one more subscription), so a master's
// leader samples and its follower samples are fitted apart. Otherwise every
// election inside a fit window would look like growth, and every lost
// leadership like a fall hiding it. A role change counts as an event on that
// master: the samples just after it are left out like those after a fault.
// A worker's samples taken while one of the soak's crawls ran on it are left
// out of its RSS and descriptor series: the crawl's worker thread and sockets
// belong to the crawl, and the worker at rest is what must not grow.

import { excludedAfter, judge, type Fit, type Point } from './fit.js';
import { METRICS, type Metric } from './config.js';

export type Role = 'leader' | 'follower';

export interface Sample {
  /** Minutes since the start of the run. */
  t: number;
  id: string;
  pid: number;
  rssMiB: number | null;
  heapMiB: number | null;
  fds: number | null;
  subs: number | null;
  /** Masters only: leading or following at this sample (see fillRoles for samples it could not be read at). */
  role?: Role;
  /**
   * Recorded to explain a curve, not judged: RSS split into anonymous and
   * file-backed pages; a gaffer process's major GCs so far; an etcd member's
   * raft index, keys, bbolt bytes in use and Go heap in use.
   */
  extra?: Record<string, number | null>;
  /** Set by markExcluded: during or within the quiet period after a fault on this process (or a role change). */
  excluded?: boolean;
  /** Workers only: one of the soak's crawls ran here at (or just before) this sample; not fitted for RSS and descriptors. */
  busy?: boolean;
}

/** A fault's reach: which process ids it hit, from when to when it was healed (minutes since the start). */
export interface FaultWindow {
  ids: readonly string[];
  from: number;
  to: number;
}

export const FIELD: Record<Metric, 'rssMiB' | 'heapMiB' | 'fds' | 'subs'> = {
  rss: 'rssMiB',
  heap: 'heapMiB',
  fds: 'fds',
  subs: 'subs',
};

/** incarnation names one run of one process. */
export const incarnation = (s: { id: string; pid: number }): string => `${s.id}#${s.pid}`;
/** seriesKey names one series: an incarnation, and a master's role. */
export const seriesKey = (s: { id: string; pid: number; role?: Role | undefined }): string => `${incarnation(s)}${s.role ? `/${s.role}` : ''}`;

function byIncarnation(samples: readonly Sample[]): Map<string, Sample[]> {
  const out = new Map<string, Sample[]>();
  for (const s of samples) {
    const k = incarnation(s);
    out.set(k, [...(out.get(k) ?? []), s]);
  }
  for (const list of out.values()) list.sort((a, b) => a.t - b.t);
  return out;
}

/**
 * fillRoles gives a master's samples whose role could not be read (its
 * /metrics did not answer: paused, starting) the role of the sample before,
 * or failing that the one after, within the same incarnation. A master
 * incarnation never seen with a role keeps none.
 */
export function fillRoles(samples: Sample[], isMaster: (id: string) => boolean): void {
  for (const list of byIncarnation(samples.filter((s) => isMaster(s.id))).values()) {
    for (const order of [list, [...list].reverse()]) {
      let last: Role | undefined;
      for (const s of order) {
        if (s.role === undefined && last !== undefined) s.role = last;
        last = s.role;
      }
    }
  }
}

/** roleChanges: for every master incarnation, a window at each sample whose role differs from the sample before. */
export function roleChanges(samples: readonly Sample[]): FaultWindow[] {
  const out: FaultWindow[] = [];
  for (const list of byIncarnation(samples.filter((s) => s.role !== undefined)).values()) {
    for (let i = 1; i < list.length; i++) {
      if (list[i]!.role !== list[i - 1]!.role) out.push({ ids: [list[i]!.id], from: list[i - 1]!.t, to: list[i]!.t });
    }
  }
  return out;
}

/** markExcluded sets `excluded` on every sample taken during a fault on its process or within quietMin after it healed. */
export function markExcluded(samples: Sample[], faults: readonly FaultWindow[], quietMin: number): void {
  const byId = new Map<string, Array<[number, number]>>();
  for (const f of faults) for (const id of f.ids) byId.set(id, [...(byId.get(id) ?? []), [f.from, f.to]]);
  for (const s of samples) s.excluded = excludedAfter(s.t, byId.get(s.id) ?? [], quietMin);
}

export interface SeriesFit extends Fit {
  metric: Metric;
  id: string;
  pid: number;
  role?: Role;
  key: string;
}

export interface Series {
  metric: Metric;
  id: string;
  pid: number;
  role?: Role;
  key: string;
  points: Point[];
}

function group(samples: readonly Sample[], metric: Metric, keyOf: (s: Sample) => string, withRole: boolean): Series[] {
  const out = new Map<string, Series>();
  for (const s of [...samples].sort((a, b) => a.t - b.t)) {
    const v = s[FIELD[metric]];
    if (v === null || v === undefined) continue;
    const key = keyOf(s);
    let ser = out.get(key);
    if (!ser) out.set(key, (ser = { metric, id: s.id, pid: s.pid, key, points: [], ...(withRole && s.role ? { role: s.role } : {}) }));
    // Major GCs matter to memory only; a Go process (nats-server, etcd) has no count here.
    const gcs = metric === 'heap' || metric === 'rss' ? s.extra?.majorGcs : undefined;
    // A crawl's worker thread (30-60 MiB) and sockets belong to the crawl, not to the worker at rest.
    const left = s.excluded || (s.busy && (metric === 'rss' || metric === 'fds'));
    ser.points.push({ t: s.t, v, ...(left ? { excluded: true } : {}), ...(typeof gcs === 'number' ? { gcs } : {}) });
  }
  return [...out.values()];
}

/** series splits one metric into the series that are fitted: per incarnation and role, in time order, skipping missing values. */
export function series(samples: readonly Sample[], metric: Metric): Series[] {
  return group(samples, metric, seriesKey, true);
}

/** lines splits one metric into one line per incarnation (roles together), for the plot. */
export function lines(samples: readonly Sample[], metric: Metric): Series[] {
  return group(samples, metric, incarnation, false);
}

export interface Rules {
  thresholds: Record<Metric, number>;
  minWindowMin: number;
  minPoints: number;
  minT: number;
  lagMin?: number;
  /** Fit each bucket's lowest sample (minutes); 0: every sample. */
  floorMin?: number;
  /** Judge a gaffer process's heap and RSS only if the window holds this many major GCs; 0: always. */
  minMajorGcs?: number;
}

/** analyze judges every series of every metric. */
export function analyze(samples: readonly Sample[], rules: Rules): { series: Series[]; fits: SeriesFit[] } {
  const all: Series[] = [];
  const fits: SeriesFit[] = [];
  for (const metric of METRICS) {
    for (const s of series(samples, metric)) {
      all.push(s);
      const f = judge(s.points, {
        threshold: rules.thresholds[metric],
        minWindowMin: rules.minWindowMin,
        minPoints: rules.minPoints,
        minT: rules.minT,
        lagMin: rules.lagMin ?? 0,
        floorMin: rules.floorMin ?? 0,
        minGcs: metric === 'heap' || metric === 'rss' ? (rules.minMajorGcs ?? 0) : 0,
      });
      fits.push({ metric, id: s.id, pid: s.pid, key: s.key, ...(s.role ? { role: s.role } : {}), ...f });
    }
  }
  return { series: all, fits };
}
