// The chaos checker: pure functions from what the processes reported (the
// client's record of its requests, the workers' task logs, the injector's
// record of kills and pauses, and a final snapshot) to violations of the
// promise:
//
//   lost         an acknowledged add whose resource is gone (or was replaced by another id)
//   resurrected  an acknowledged delete whose name came back without an add
//   reanswered   an add answered "created: false" with an id no answer ever
//                reported created: the add's own earlier attempt created it,
//                and a re-sent copy got a second outcome instead of the first
//   orphaned     after convergence, a task running that is not listed (or not on its
//                assigned worker, or with an old id), or a listed resource running nowhere
//   overlap      one resource (name and id) running on two workers at the same time
//
// Ordering. The workload keeps at most one request per name in flight, so the
// acknowledged requests on one name are totally ordered by the client's own
// clock. A request that failed with an ambiguous error (TIMEOUT, UNAVAILABLE,
// NO_LEADER, ...) may or may not have been applied: after it the name's state
// is unknown until the next acknowledged request, and a name whose last
// request was ambiguous is reported as "either way", never as a violation.
//
// Run intervals come from the workers' logs (chaos/runs.ts, which says how
// they are read and why they need no slack).

import type { Death, Pause } from '#harness/faults.js';
import { mismatches, type Finding, type Listed, type Snapshot } from '#harness/snapshot.js';
import { isShardName } from '#protocol/shards.js';
import { buildRuns, findNameOverlaps, findOverlaps, parseWorkerLog, unexplainedLateStops, type Activity, type Overlap, type TaskLine } from './runs.js';

export type OpKind = 'add' | 'delete';
/** How a request ended, as far as the client can know. */
export type OpResult = 'ok' | 'not_found' | 'ambiguous' | 'rejected';

export interface OpRecord {
  seq: number;
  name: string;
  op: OpKind;
  /** Date.now() when the call was made and when it returned. */
  start: number;
  end: number;
  result: OpResult;
  /** add: whether it created the resource. */
  created?: boolean;
  /** The resource id in the reply (add and delete). */
  id?: string;
  /** The error code of a failed request. */
  code?: string;
  message?: string;
}

/** classify maps a failed request's error code to what it tells us. */
export function classify(op: OpKind, code: string | undefined): OpResult {
  // A delete answered NOT_FOUND is definite: the name was absent when the leader ordered it.
  if (op === 'delete' && code === 'NOT_FOUND') return 'not_found';
  // BAD_REQUEST is refused by a master before anything is forwarded.
  if (code === 'BAD_REQUEST') return 'rejected';
  // Anything else may have been committed by an attempt we stopped waiting for.
  return 'ambiguous';
}

// --- acknowledged adds and deletes -----------------------------------------

export interface EitherWay {
  name: string;
  last: OpRecord;
  /** Whether the final list has it. */
  present: boolean;
}

type Known = { k: 'unknown' } | { k: 'absent'; by: OpRecord } | { k: 'present'; id: string; by: OpRecord };

export function describeOp(o: OpRecord): string {
  const out =
    o.result === 'ok'
      ? o.op === 'add' ? `ok created=${o.created} id=${o.id}` : `ok id=${o.id}`
      : `${o.result}${o.code ? ` ${o.code}` : ''}`;
  return `#${o.seq} ${o.op}(${o.name}) ${new Date(o.start).toISOString()}..${new Date(o.end).toISOString()} -> ${out}`;
}

/** lateSuspects: earlier ambiguous requests on the name that, applied late, would explain the finding. */
function lateSuspects(history: OpRecord[], op: OpKind): string[] {
  return history
    .filter((o) => o.result === 'ambiguous' && o.op === op)
    .map((o) => `note: ${describeOp(o)} ended ambiguously and may have been applied late`);
}

/**
 * checkOps replays each name's requests in order and compares every
 * acknowledged reply, and then the final list, with what the acknowledged
 * requests before it imply.
 */
export function checkOps(
  ops: OpRecord[],
  finalList: Listed[],
): { lost: Finding[]; resurrected: Finding[]; reanswered: Finding[]; eitherWay: EitherWay[]; anomalies: string[] } {
  const lost: Finding[] = [];
  const resurrected: Finding[] = [];
  const reanswered: Finding[] = [];
  // Every id some answer reported as created, across all names.
  const createdIds = new Set(ops.filter((o) => o.op === 'add' && o.result === 'ok' && o.created === true && o.id).map((o) => o.id!));
  const eitherWay: EitherWay[] = [];
  const anomalies: string[] = [];
  const byName = new Map<string, OpRecord[]>();
  for (const o of ops) byName.set(o.name, [...(byName.get(o.name) ?? []), o]);
  const final = new Map(finalList.map((r) => [r.name, r]));

  for (const name of [...new Set([...byName.keys(), ...final.keys()])].sort()) {
    const history = [...(byName.get(name) ?? [])].sort((a, b) => a.start - b.start || a.seq - b.seq);
    let state: Known = { k: 'absent', by: { seq: 0, name, op: 'delete', start: 0, end: 0, result: 'ok' } };
    let prevEnd = -Infinity;
    const done: OpRecord[] = [];
    const flag = (kind: 'lost' | 'resurrected' | 'reanswered', detail: string, evidence: string[]): void => {
      const f: Finding = { kind, name, detail, evidence: [...evidence, ...lateSuspects(done, kind === 'lost' ? 'delete' : 'add')] };
      (kind === 'lost' ? lost : kind === 'resurrected' ? resurrected : reanswered).push(f);
    };
    for (const o of history) {
      if (o.start < prevEnd) {
        // Two requests on one name at once: their order is unknown, so is the state.
        anomalies.push(`${name}: ${describeOp(o)} overlaps the request before it`);
        state = { k: 'unknown' };
        prevEnd = Math.max(prevEnd, o.end);
        done.push(o);
        continue;
      }
      prevEnd = Math.max(prevEnd, o.end);
      const basis = state.k === 'unknown' ? [] : state.by.seq === 0 ? ['(never added before)'] : [describeOp(state.by)];
      if (o.result === 'ambiguous') state = { k: 'unknown' };
      else if (o.result === 'rejected') {
        /* no effect */
      } else if (o.op === 'add') {
        if (o.result !== 'ok' || !o.id) {
          anomalies.push(`${name}: ${describeOp(o)} is an add without an id`);
          state = { k: 'unknown' };
        } else {
          if (state.k === 'absent' && o.created === false) {
            if (!createdIds.has(o.id)) {
              flag('reanswered', `add answered created: false with id ${o.id}, which no answer ever reported created: its own earlier attempt created it`, [
                ...basis,
                describeOp(o),
              ]);
            } else flag('resurrected', `add found it present (id ${o.id}) after it was deleted`, [...basis, describeOp(o)]);
          }
          if (state.k === 'present' && o.created === true) flag('lost', `add re-created it (id ${o.id}): acknowledged id ${state.id} was gone`, [...basis, describeOp(o)]);
          if (state.k === 'present' && o.created === false && o.id !== state.id) flag('lost', `acknowledged id ${state.id} was replaced by ${o.id}`, [...basis, describeOp(o)]);
          state = { k: 'present', id: o.id, by: o };
        }
      } else if (o.result === 'not_found') {
        if (state.k === 'present') flag('lost', `delete found no resource: acknowledged id ${state.id} was gone`, [...basis, describeOp(o)]);
        state = { k: 'absent', by: o };
      } else {
        if (state.k === 'absent') flag('resurrected', `delete found it present (id ${o.id}) after it was deleted`, [...basis, describeOp(o)]);
        if (state.k === 'present' && o.id !== state.id) flag('lost', `delete removed id ${o.id}: acknowledged id ${state.id} had been replaced`, [...basis, describeOp(o)]);
        state = { k: 'absent', by: o };
      }
      done.push(o);
    }
    const f = final.get(name);
    const seen = f ? `final list: ${name} id=${f.id} on ${f.worker ?? 'no worker'}` : `final list: no ${name}`;
    if (state.k === 'unknown') {
      const last = history[history.length - 1];
      if (last) eitherWay.push({ name, last, present: f !== undefined });
      else anomalies.push(`${name}: state unknown without any request`);
    } else if (state.k === 'present') {
      if (!f) flag('lost', `acknowledged id ${state.id} is missing from the final list`, [describeOp(state.by), seen]);
      else if (f.id !== state.id) flag('lost', `acknowledged id ${state.id} was replaced by ${f.id}`, [describeOp(state.by), seen]);
    } else if (f) {
      flag('resurrected', state.by.seq === 0 ? 'listed but never added' : 'listed after its acknowledged delete', [
        ...(state.by.seq === 0 ? [] : [describeOp(state.by)]),
        seen,
      ]);
    }
  }
  return { lost, resurrected, reanswered, eitherWay, anomalies };
}

// --- the whole check ---------------------------------------------------------

export interface CheckInput {
  ops: OpRecord[];
  /** Worker id -> the text of its log file. */
  logs: Record<string, string>;
  deaths: Death[];
  pauses: Pause[];
  /** The snapshot taken after the workload stopped and the cluster converged (or gave up converging). */
  final: Snapshot;
  endOfRun: number;
}

export interface CheckResult {
  lost: Finding[];
  resurrected: Finding[];
  reanswered: Finding[];
  orphaned: Finding[];
  overlaps: Overlap[];
  longestOverlapMs: number;
  eitherWay: EitherWay[];
  /** Same name, different ids, on two workers at once: reported, not counted. */
  nameOverlaps: Overlap[];
  runs: number;
  taskLines: number;
  /** Stop lines written more than LATE_STOP_NOTE_MS after the end they claim (late fences). */
  lateStops: number;
  /**
   * Sensitivity, not a verdict: the overlaps there would be if every stop
   * counted from when it was logged instead of the end it claims. Non-zero
   * shows the run exercised a paused worker whose work moved meanwhile.
   */
  ifStopsCountedWhenLogged: { overlaps: number; longestMs: number };
  /**
   * Late stops whose claimed end the worker's own log refutes (it wrote other
   * lines after that end, before fencing); their runs were extended. Not a
   * violation by itself: an overlap it causes is.
   */
  refutedStops: string[];
  /**
   * Workers held in SIGSTOP past their lease deadline run again from SIGCONT
   * until their fence begins: those runs, and the overlaps they make with the
   * resource's next owner. Reported, not counted: no lease can stop a paused
   * process, and what its tasks do past the lease is refused (checkpoints,
   * results, reports), which the crawl check verifies.
   */
  resumedPastLease: { overlaps: number; longestMs: number; runs: number };
  notes: string[];
}

/** A stop written this long after the end it claims must be explained by a pause (else it is noted). */
export const LATE_STOP_NOTE_MS = 250;

export function check(input: CheckInput): CheckResult {
  const lines: TaskLine[] = [];
  const activity: Activity[] = [];
  const notes: string[] = [];
  for (const [worker, text] of Object.entries(input.logs).sort()) {
    const p = parseWorkerLog(worker, text);
    lines.push(...p.lines);
    activity.push(...p.activity);
    for (const m of p.malformed) notes.push(`${worker}: malformed task line: ${m.slice(0, 300)}`);
  }
  const { runs, anomalies, refuted } = buildRuns(lines, input.deaths, input.endOfRun, activity, input.pauses);
  notes.push(...anomalies);
  for (const l of unexplainedLateStops(lines, input.pauses, LATE_STOP_NOTE_MS)) {
    notes.push(`${l.worker}: a stop written ${l.loggedAt - l.at} ms after the end it claims, with no pause to explain it: ${l.raw}`);
  }
  const all = findOverlaps(runs);
  const isResumed = (o: Overlap): boolean => o.runs.some((r) => r.end === 'resumed-past-lease');
  const overlaps = all.filter((o) => !isResumed(o));
  const resumed = all.filter(isResumed);
  const asLogged = findOverlaps(
    buildRuns(lines.map((l) => (l.event === 'stopped' ? { ...l, at: l.loggedAt } : l)), input.deaths, input.endOfRun, activity).runs,
  );
  // Requests name resources; a shard's own entry in the snapshot (harness/snapshot.ts) is judged by mismatches, not here.
  const ops = checkOps(input.ops, input.final.list.filter((r) => !isShardName(r.name)));
  notes.push(...ops.anomalies);
  return {
    lost: ops.lost,
    resurrected: ops.resurrected,
    reanswered: ops.reanswered,
    orphaned: mismatches(input.final),
    overlaps,
    longestOverlapMs: overlaps.reduce((m, o) => Math.max(m, o.ms), 0),
    eitherWay: ops.eitherWay,
    nameOverlaps: findNameOverlaps(runs),
    runs: runs.length,
    taskLines: lines.length,
    lateStops: lines.filter((l) => l.event === 'stopped' && l.loggedAt - l.at > LATE_STOP_NOTE_MS).length,
    refutedStops: refuted,
    resumedPastLease: { overlaps: resumed.length, longestMs: resumed.reduce((m, o) => Math.max(m, o.ms), 0), runs: runs.filter((r) => r.end === 'resumed-past-lease').length },
    ifStopsCountedWhenLogged: { overlaps: asLogged.length, longestMs: Math.round(asLogged[0]?.ms ?? 0) },
    notes,
  };
}

export function violationCount(r: Pick<CheckResult, 'lost' | 'resurrected' | 'reanswered' | 'orphaned' | 'overlaps'>): number {
  return r.lost.length + r.resurrected.length + r.reanswered.length + r.orphaned.length + r.overlaps.length;
}
