// Results of a chaos run (what results.json holds) and the table printed at its end.

import { numbersRight, table as printTable } from '#lib/table.js';
import type { CrawlFinding } from './crawls.js';
import type { ScheduleFinding } from './schedules.js';
import type { ShardedCrawlCounts, ShardedCrawlFinding } from './sharded-crawls.js';
import { median } from '#lib/stats.js';
import type { CheckResult, EitherWay, OpRecord } from './check.js';
import type { Overlap } from './runs.js';
import type { Finding } from '#harness/snapshot.js';
import { describeOp, LATE_STOP_NOTE_MS } from './check.js';
import { FAULT_KINDS, type FaultKind, type FaultRecord } from '#harness/faults.js';

export interface KindStats {
  count: number;
  unrecovered: number;
  /** From the fault's start to recovery (ms). */
  recoverMedianMs: number | null;
  recoverMaxMs: number | null;
  /** From the fault's healing (restart, resume) to recovery (ms). */
  afterHealMedianMs: number | null;
  afterHealMaxMs: number | null;
}

export interface OverlapOut extends Omit<Overlap, 'runs'> {
  runs: Overlap['runs'];
  /** Faults whose window (start to recovery) comes within 10 s before the overlap. */
  faults: string[];
}

export interface Results {
  meta: {
    startedAt: string;
    finishedAt: string;
    durationMs: number;
    seed: number;
    faultsRequested: number;
    quick: boolean;
    commit: string;
    node: string;
    cpus: number;
    config: unknown;
    /** The cluster's log directory, when kept. */
    logsDir: string | null;
    /** Why the fault phase ended early, if it did. */
    stoppedEarly: string | null;
  };
  faults: FaultRecord[];
  byKind: Record<FaultKind, KindStats>;
  requests: {
    total: number;
    acknowledged: number;
    acknowledgedByOp: { add: number; delete: number };
    /** Deletes answered NOT_FOUND: a definite outcome (absent), not an acknowledgement of a delete. */
    notFound: number;
    /** Every failure by code, NOT_FOUND included. */
    failedByCode: Record<string, number>;
    /** Failures whose outcome is unknown (everything but NOT_FOUND and BAD_REQUEST). */
    ambiguous: number;
  };
  eitherWay: Array<{ name: string; last: string; present: boolean }>;
  final: { converged: boolean; why: string | null; resources: number };
  checked: {
    taskLines: number;
    runs: number;
    lateStops: number;
    ifStopsCountedWhenLogged: { overlaps: number; longestMs: number };
    /** Late fences whose claimed end the worker's own log refutes (runs extended accordingly). */
    refutedStops: string[];
    /** Workers paused past their lease that ran again from SIGCONT until their fence (see check.ts); reported, not counted. */
    resumedPastLease?: { overlaps: number; longestMs: number; runs: number };
  };
  violations: {
    lost: Finding[];
    resurrected: Finding[];
    reanswered: Finding[];
    orphaned: Finding[];
    overlaps: OverlapOut[];
    unrecovered: Array<{ n: number; kind: FaultKind; target: string; why: string }>;
    /** The crawls' promises: results lost or duplicated, checkpoints from a non-owner. */
    results: CrawlFinding[];
    /** Scheduled resources' fires: doubled, lost, stalled (chaos/schedules.ts). */
    schedules?: ScheduleFinding[];
    /** Sharded crawls: results lost or duplicated, two owners of a shard at once, a host over its limit (chaos/sharded-crawls.ts). */
    shardedCrawls?: ShardedCrawlFinding[];
  };
  crawls: { started: number; pagesChecked: number };
  shardedCrawls?: ShardedCrawlCounts & { shards: number; perHostRps: number };
  schedules?: { resources: number; firesChecked: number };
  summary: {
    lost: number;
    resurrected: number;
    reanswered: number;
    orphaned: number;
    overlaps: number;
    longestOverlapMs: number;
    unrecovered: number;
    results: number;
    schedules?: number;
    /** Sharded-crawl findings counted in the total (their shard overlaps are counted among the overlaps). */
    shardedCrawls?: number;
    total: number;
  };
  nameOverlaps: Array<{ name: string; workers: [string, string]; ms: number; ids: string }>;
  notes: string[];
  /** Every client request, in the order they ended. */
  ops: OpRecord[];
}

/** wholeMs rounds a summary to whole ms; null when there was nothing to summarize. */
const wholeMs = (x: number | undefined): number | null => (x === undefined ? null : Math.round(x));

const max = (xs: number[]): number | null => (xs.length ? Math.max(...xs) : null);

export function byKind(faults: FaultRecord[]): Record<FaultKind, KindStats> {
  const out = {} as Record<FaultKind, KindStats>;
  for (const k of FAULT_KINDS) {
    const fs = faults.filter((f) => f.kind === k);
    const rec = fs.flatMap((f) => (f.recoverMs === null ? [] : [f.recoverMs]));
    const heal = fs.flatMap((f) => (f.afterHealMs === null ? [] : [f.afterHealMs]));
    out[k] = {
      count: fs.length,
      unrecovered: fs.filter((f) => f.recoveredAt === null).length,
      recoverMedianMs: wholeMs(median(rec)),
      recoverMaxMs: max(rec),
      afterHealMedianMs: wholeMs(median(heal)),
      afterHealMaxMs: max(heal),
    };
  }
  return out;
}

export function requestStats(ops: OpRecord[]): Results['requests'] {
  const failedByCode: Record<string, number> = {};
  for (const o of ops) if (o.result !== 'ok') failedByCode[o.code ?? 'UNKNOWN'] = (failedByCode[o.code ?? 'UNKNOWN'] ?? 0) + 1;
  const ok = ops.filter((o) => o.result === 'ok');
  return {
    total: ops.length,
    acknowledged: ok.length,
    acknowledgedByOp: { add: ok.filter((o) => o.op === 'add').length, delete: ok.filter((o) => o.op === 'delete').length },
    notFound: ops.filter((o) => o.result === 'not_found').length,
    failedByCode,
    ambiguous: ops.filter((o) => o.result === 'ambiguous').length,
  };
}

export function overlapsOut(r: CheckResult, faults: FaultRecord[]): OverlapOut[] {
  return r.overlaps.map((o) => ({
    ...o,
    faults: faults
      .filter((f) => f.startedAt <= o.to && (f.recoveredAt ?? Infinity) >= o.from - 10_000)
      .map((f) => `#${f.n} ${f.kind} ${f.target} at ${new Date(f.startedAt).toISOString()}`),
  }));
}

export function eitherWayOut(e: EitherWay[]): Results['eitherWay'] {
  return e.map((x) => ({ name: x.name, last: describeOp(x.last), present: x.present }));
}

const ms = (x: number | null): string => (x === null ? '-' : String(x));

function table(rows: string[][]): string {
  return printTable(rows[0]!, rows.slice(1), { align: numbersRight(rows[0]!.length) });
}

/** report is the human summary of a run. */
export function report(r: Results): string {
  const out: string[] = [];
  const s = r.summary;
  out.push(
    `chaos: seed ${r.meta.seed}, ${r.faults.length}/${r.meta.faultsRequested} faults, ${(r.meta.durationMs / 1000).toFixed(0)} s` +
      (r.meta.stoppedEarly ? ` (stopped early: ${r.meta.stoppedEarly})` : ''),
  );
  out.push('');
  const rows: string[][] = [['fault', 'injected', 'unrecovered', 'recover median ms', 'max ms', 'after heal median ms', 'max ms']];
  for (const k of FAULT_KINDS) {
    const b = r.byKind[k];
    rows.push([k, String(b.count), String(b.unrecovered), ms(b.recoverMedianMs), ms(b.recoverMaxMs), ms(b.afterHealMedianMs), ms(b.afterHealMaxMs)]);
  }
  rows.push(['total', String(r.faults.length), String(s.unrecovered), '', '', '', '']);
  out.push(table(rows));
  out.push('(recover: from the fault\'s start until the cluster was whole and converged; after heal: from the restart or resume)');
  out.push('');
  const q = r.requests;
  out.push(`requests: ${q.total} sent, ${q.acknowledged} acknowledged (add ${q.acknowledgedByOp.add}, delete ${q.acknowledgedByOp.delete}), ${q.ambiguous} ambiguous`);
  const codes = Object.entries(q.failedByCode).sort((a, b) => b[1] - a[1]);
  out.push(
    `failed by code: ${codes.length ? codes.map(([c, n]) => `${c} ${n}${c === 'NOT_FOUND' ? ' (definite: absent)' : ''}`).join(', ') : 'none'}`,
  );
  out.push(
    `names either way (last request ambiguous): ${r.eitherWay.length}${r.eitherWay.length ? ` (${r.eitherWay.map((e) => `${e.name}:${e.present ? 'present' : 'absent'}`).join(', ')})` : ''}`,
  );
  out.push(`final state: ${r.final.resources} resources, ${r.final.converged ? 'converged' : `NOT converged: ${r.final.why}`}; ${r.checked.taskLines} task log lines, ${r.checked.runs} runs`);
  const w = r.checked.ifStopsCountedWhenLogged;
  out.push(
    `late fences (stop logged >${LATE_STOP_NOTE_MS} ms after the end it claims): ${r.checked.lateStops}; ` +
      `counted until logged instead, they would overlap ${w.overlaps} times (longest ${w.longestMs} ms)`,
  );
  const rp = r.checked.resumedPastLease;
  if (rp?.runs) {
    out.push(
      `resumed past the lease (SIGSTOP held a worker past its deadline; it ran from SIGCONT until its fence began): ${rp.runs} runs, ` +
        `${rp.overlaps} overlapping the next owner (longest ${rp.longestMs} ms); not counted: effects past the lease are refused (crawl check)`,
    );
  }
  const sc = r.shardedCrawls;
  if (sc?.started) {
    out.push(
      `sharded crawls: ${sc.started} started, ${sc.completed} completed and checked (${sc.shards} shards each, ${sc.pagesChecked} pages)${sc.failed ? `, ${sc.failed} FAILED for good (see notes)` : ''}; ` +
        `${sc.shardRuns} shard runs, ${sc.moves} beyond each shard's first (moves, restarts); one owner per shard: ` +
        `${(r.violations.shardedCrawls ?? []).filter((f) => f.kind === 'shard-owner-overlap').length} overlaps; busiest host in 1 s: ${sc.busiestWindow} of ${sc.perHostRps} allowed ` +
        `(${sc.requests} requests); ${sc.refetched} pages fetched more than once; ${sc.resent ?? 0} URLs sent again for want of a receipt (queue items lost)`,
    );
  }
  if (r.checked.refutedStops.length) {
    out.push(`late fences refuted by the worker's own log (it ran after the end it claims; runs extended): ${r.checked.refutedStops.length}`);
    for (const x of r.checked.refutedStops.slice(0, 5)) out.push(`    ${x.replace(/\n/g, '\n    ')}`);
  }
  out.push('');
  out.push(
    table([
      ['violations', 'count'],
      ['lost (acked add missing)', String(s.lost)],
      ['resurrected (acked delete present)', String(s.resurrected)],
      ['reanswered (a re-sent add got a second outcome)', String(s.reanswered)],
      ['orphaned', String(s.orphaned)],
      ['overlapping runs', String(s.overlaps)],
      ['longest overlap ms', String(s.longestOverlapMs)],
      ['unrecovered faults', String(s.unrecovered)],
      [`crawl results and checkpoints (${r.crawls.started} crawls, ${r.crawls.pagesChecked} pages)`, String(s.results)],
      ...(r.schedules ? [[`schedule fires (${r.schedules.resources} schedules, ${r.schedules.firesChecked} fires)`, String(s.schedules ?? 0)]] : []),
      ...(r.shardedCrawls?.started
        ? [[`sharded crawl results and politeness (${r.shardedCrawls.started} crawls, ${r.shardedCrawls.pagesChecked} pages, ${r.shardedCrawls.requests} requests)`, String(s.shardedCrawls ?? 0)]]
        : []),
      ['total', String(s.total)],
    ]),
  );
  const show = (title: string, fs: Finding[]): void => {
    for (const f of fs.slice(0, 10)) {
      out.push(`${title} ${f.name}: ${f.detail}`);
      for (const e of f.evidence) out.push(`    ${e}`);
    }
    if (fs.length > 10) out.push(`${title}: ${fs.length - 10} more in results.json`);
  };
  show('LOST', r.violations.lost);
  show('RESURRECTED', r.violations.resurrected);
  show('REANSWERED', r.violations.reanswered);
  show('ORPHANED', r.violations.orphaned);
  for (const o of r.violations.overlaps.slice(0, 10)) {
    out.push(`OVERLAP ${o.name} (${o.id}) on ${o.workers.join(' and ')} for ${o.ms} ms, ${new Date(o.from).toISOString()}..${new Date(o.to).toISOString()}`);
    for (const run of o.runs) {
      out.push(`    ${run.worker} ${new Date(run.from).toISOString()}..${new Date(run.to).toISOString()} (${run.end})`);
      out.push(`      ${run.startLine}`);
      if (run.stopLine) out.push(`      ${run.stopLine}`);
    }
    for (const f of o.faults) out.push(`    near fault ${f}`);
  }
  for (const u of r.violations.unrecovered) out.push(`UNRECOVERED after #${u.n} ${u.kind} ${u.target}: ${u.why}`);
  for (const f of r.violations.results.slice(0, 10)) out.push(`${f.kind.toUpperCase()} ${f.name}: ${f.detail}`);
  for (const f of (r.violations.schedules ?? []).slice(0, 10)) out.push(`${f.kind.toUpperCase()} ${f.name}: ${f.detail}`);
  for (const f of (r.violations.shardedCrawls ?? []).slice(0, 10)) out.push(`${f.kind.toUpperCase()} ${f.name}: ${f.detail}`);
  if (r.nameOverlaps.length) {
    out.push(`(info) same name, different ids, on two workers at once: ${r.nameOverlaps.length}, longest ${Math.round(Math.max(...r.nameOverlaps.map((o) => o.ms)))} ms`);
  }
  if (r.notes.length) out.push(`notes: ${r.notes.length} (see results.json)`);
  return out.join('\n');
}
