// What a soak run writes (soak.json, typed here), and the text it prints.

import { table, numbersRight } from '#lib/table.js';
import { METRICS, METRIC_INFO, type Metric, type SoakConfig } from './config.js';
import type { Sample, SeriesFit } from './analyze.js';
import { worst } from './fit.js';
import { byId } from './plot.js';

export interface SoakFault {
  n: number;
  kind: string;
  /** The kind scheduled, when another was done instead (a kill whose every candidate was a witness is a pause). */
  asked?: string;
  /** As the injector names it, e.g. "etcd2 (raft leader)". */
  target: string;
  /** Process ids whose samples this fault excludes from the fit for a while. */
  affects: string[];
  /** Minutes since the start of the run. */
  t: number;
  healedT: number;
  startedAt: string;
  downMs: number;
  error?: string;
}

export interface SoakProcess {
  key: string;
  id: string;
  role: 'master' | 'worker' | 'nats' | 'etcd';
  pid: number;
  firstT: number;
  lastT: number;
  samples: number;
}

export interface SoakResults {
  meta: {
    startedAt: string;
    finishedAt: string;
    durationMs: number;
    seed: number;
    commit: string;
    node: string;
    cpus: number;
    logsDir: string | null;
    config: SoakConfig;
  };
  rules: {
    fit: string;
    minWindowMin: number;
    minPoints: number;
    minT: number;
    lagSeconds: number;
    floorSeconds: number;
    minMajorGcs: number;
    quietSeconds: number;
    thresholds: Record<Metric, { perMinute: number; unit: string; env: string }>;
  };
  processes: SoakProcess[];
  faults: SoakFault[];
  /** When a master was first seen leading or following after the other (minutes since the start). */
  roleChanges: Array<{ id: string; t: number }>;
  skippedFaults: Array<{ t: number; why: string }>;
  /** Every sample: t in minutes since the start; null where the value could not be read. */
  samples: Sample[];
  fits: SeriesFit[];
  /** Per metric, the judged series with the highest slope relative to its threshold (or, if none was judged, the highest slope). */
  worst: Record<Metric, { key: string; slope: number | null; threshold: number; status: string } | null>;
  load: unknown;
  etcdCompactions: number;
  /** At the end of the run: each gaffer connection's subscriptions, by connection name. */
  finalSubscriptions: Record<string, string[]>;
  summary: { series: number; judged: number; short: number; noise: number; failing: number; pass: boolean };
}

const f2 = (v: number | null): string => (v === null ? '-' : v.toFixed(3));

/** report is the text printed at the end: per metric the worst slope next to its threshold, then every failing series. */
export function report(r: SoakResults): string {
  const out: string[] = [];
  const m = r.meta;
  out.push(
    `soak: seed ${m.seed}, ${(m.durationMs / 60000).toFixed(1)} min, ${r.faults.length} faults, ${r.processes.length} process incarnations, ${r.samples.length} samples`,
  );
  out.push(
    `fit: least squares over the second half of each series (one per process incarnation; a master's leader and follower samples apart), ` +
      `through its floor (each ${r.rules.floorSeconds} s's lowest sample), leaving out samples taken during a fault on that process or ` +
      `within ${r.rules.quietSeconds} s after it healed (a master's role change counts as one). Not judged: windows under ${r.rules.minWindowMin} min ` +
      `or ${r.rules.minPoints} points, and a gaffer process's heap and RSS over fewer than ${r.rules.minMajorGcs} major GCs. ` +
      `A slope above its threshold fails if it is at least ${r.rules.minT} standard errors (Newey-West, ${r.rules.lagSeconds} s) above zero, else it is noise`,
  );
  out.push('');
  const rows = METRICS.map((metric) => {
    const fits = r.fits.filter((f) => f.metric === metric);
    const w = worst(fits);
    const info = METRIC_INFO[metric];
    return [
      `${info.title}`,
      w ? `${f2(w.slope)}` : '-',
      `${f2(r.rules.thresholds[metric].perMinute)}`,
      `${info.unit}/min`,
      w ? w.key : '-',
      String(fits.filter((f) => f.status !== 'short').length),
      String(fits.filter((f) => f.status === 'short').length),
      String(fits.filter((f) => f.status === 'noise').length),
      String(fits.filter((f) => f.status === 'fail').length),
    ];
  });
  out.push(
    table(['metric', 'worst slope', 'threshold', 'unit', 'series', 'judged', 'short', 'noise', 'failing'], rows, {
      align: ['left', 'right', 'right', 'left', 'left', 'right', 'right', 'right', 'right'],
      rule: true,
    }),
  );
  out.push('');
  const judged = r.fits.filter((f) => f.status !== 'short').sort((a, b) => a.metric.localeCompare(b.metric) || byId(a.id, b.id));
  if (judged.length > 0) {
    out.push('every judged series (slope per minute, fitted over minutes from-to):');
    out.push(
      table(
        ['metric', 'series', 'slope', '± s.e.', 'threshold', 'points', 'from-to', 'status'],
        judged.map((f) => [
          f.metric, f.key, f2(f.slope), f2(f.stderr), f2(f.threshold), String(f.fitted),
          `${(f.from ?? 0).toFixed(1)}-${(f.to ?? 0).toFixed(1)}`, f.status === 'fail' ? 'FAIL' : f.status === 'noise' ? `noise (${f.why})` : 'ok',
        ]),
        { align: ['left', 'left', ...numbersRight(6).slice(1), 'left'], rule: true },
      ),
    );
    out.push('');
  }
  const failing = r.fits.filter((f) => f.status === 'fail');
  out.push(
    failing.length === 0
      ? `PASS: no series grows steadily faster than its threshold (${r.summary.judged} judged, ${r.summary.noise} above it but within noise, ${r.summary.short} too short to judge)`
      : `FAIL: ${failing.length} series grow faster than their threshold: ${failing.map((f) => `${f.metric} ${f.key} ${f2(f.slope)} > ${f2(f.threshold)}`).join('; ')}`,
  );
  return out.join('\n');
}
