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
// Run intervals. A worker's task runs from the `at` of its "task started" line
// to the `at` of its "task stopped" line. When a paused worker fences late,
// `at` is its lease deadline: the product's claim that the process did not
// run between that deadline and the fence, so neither did its tasks. We take
// that claim unless the worker's own log refutes it: if it wrote any other
// line (a task it started, a reconnect) after the claimed end and before the
// fence, its process ran then with the task still open, so the task counts as
// running again from that first line until the fence was logged (the span
// between the claimed end and that line, the pause, still does not count).
// We also note late stops that no injected pause explains. A SIGKILLed
// worker's open tasks end when the injector saw the process exit. Tasks still
// open at the end of the run end then.
//
// Slack: none. All processes share one machine's wall clock (Date.now()), so
// timestamps are comparable. Every time is floored to whole ms (a late
// fence's lease deadline comes with a fraction), and an overlap is any
// intersection of at least 1 ms: `to` of one run strictly after `from` of the
// other. A start is logged just after the task started and a stop just after
// it was aborted, so a floored end E > floored start S means the end came at
// least ~1 ms after the start: the 1 ms resolution can hide an overlap
// shorter than 1 ms, but cannot invent one.

import { WorkerLog } from '#platform/log.js';
import type { Death, Pause } from '#harness/faults.js';
import { mismatches, type Finding, type Listed, type Snapshot } from '#harness/snapshot.js';

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

// --- worker logs ------------------------------------------------------------

export interface TaskLine {
  worker: string;
  event: 'started' | 'stopped';
  name: string;
  id: string;
  /** started: when it started; stopped: when it certainly ended. */
  at: number;
  /** When the line was written (pino's `time`). */
  loggedAt: number;
  reason?: string;
  lineNo: number;
  raw: string;
}

/** Activity: any line a worker wrote, as evidence that its process ran at `time`. */
export interface Activity {
  worker: string;
  time: number;
  msg: string;
  lineNo: number;
  raw: string;
}

/** What a worker logs while it fences: these lines do not refute a late fence's claimed end. */
export const FENCE_MSGS: ReadonlySet<string> = new Set([WorkerLog.taskStopped, WorkerLog.fencing, WorkerLog.leaseOverdue, WorkerLog.leaseExpired]);

/**
 * parseWorkerLog reads one worker's log file (pino JSON lines, appended across
 * restarts). The task's resource id is `resourceId`; `id` is the process's.
 */
export function parseWorkerLog(worker: string, text: string): { lines: TaskLine[]; activity: Activity[]; malformed: string[] } {
  const lines: TaskLine[] = [];
  const activity: Activity[] = [];
  const malformed: string[] = [];
  text.split('\n').forEach((raw, i) => {
    if (!raw.startsWith('{')) return;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      if (raw.includes('"task st')) malformed.push(raw);
      return;
    }
    if (typeof o.time === 'number') activity.push({ worker, time: Math.floor(o.time), msg: String(o.msg ?? ''), lineNo: i + 1, raw });
    if (o.msg !== WorkerLog.taskStarted && o.msg !== WorkerLog.taskStopped) return;
    const event = o.msg === WorkerLog.taskStarted ? 'started' : 'stopped';
    const { name, at } = o;
    const id = o.resourceId;
    const loggedAt = typeof o.loggedAt === 'number' ? o.loggedAt : typeof o.time === 'number' ? o.time : at;
    if (typeof name !== 'string' || typeof id !== 'string' || typeof at !== 'number' || typeof loggedAt !== 'number' || id === worker) {
      malformed.push(raw);
      return;
    }
    lines.push({
      worker, event, name, id, at: Math.floor(at), loggedAt: Math.floor(loggedAt), lineNo: i + 1, raw,
      ...(typeof o.reason === 'string' ? { reason: o.reason } : {}),
    });
  });
  return { lines, activity, malformed };
}

// --- run intervals and overlaps --------------------------------------------

export interface Run {
  worker: string;
  name: string;
  id: string;
  from: number;
  to: number;
  /**
   * ran-after-claimed-end: the part of a late-fenced run that the worker's own log shows (see above).
   * resumed-past-lease: a worker held in SIGSTOP past its lease deadline runs
   * again from SIGCONT until its fence begins (its task threads resume with
   * it): nothing a lease can prevent, so reported apart, not as a violation.
   */
  end: 'stopped' | 'killed' | 'end-of-run' | 'restarted' | 'ran-after-claimed-end' | 'resumed-past-lease';
  startLine: string;
  stopLine?: string;
}

/**
 * buildRuns turns each worker's task lines, in the order they were written,
 * and its deaths into run intervals. A death closes every run open at that
 * moment; the end of the run closes what is left.
 */
export function buildRuns(
  lines: TaskLine[],
  deaths: Death[],
  endOfRun: number,
  activity: Activity[] = [],
  pauses: Pause[] = [],
): { runs: Run[]; anomalies: string[]; refuted: string[] } {
  const runs: Run[] = [];
  const anomalies: string[] = [];
  const refuted: string[] = [];
  const workers = new Set([...lines.map((l) => l.worker), ...deaths.map((d) => d.worker)]);
  for (const w of [...workers].sort()) {
    const mine = activity.filter((a) => a.worker === w && !FENCE_MSGS.has(a.msg));
    const fences = activity.filter((a) => a.worker === w && a.msg === WorkerLog.fencing);
    /** resumed: the pause its claimed end fell in, if the worker ran again (SIGCONT) before the stop was logged. */
    const resumed = (stop: TaskLine): Pause | undefined =>
      pauses.find((p) => p.target === w && p.from <= stop.at && stop.at <= p.to && p.to < stop.loggedAt);
    /** refutation: the first line (not the fence's own) written after a late stop's claimed end and before the stop. */
    const refutation = (stop: TaskLine): Activity | undefined => {
      if (stop.loggedAt <= stop.at) return undefined;
      let first: Activity | undefined;
      for (const a of mine) {
        if (a.lineNo < stop.lineNo && a.time > stop.at && a.time <= stop.loggedAt && (!first || a.time < first.time)) first = a;
      }
      return first;
    };
    type Ev = { key: number; order: number; line?: TaskLine; death?: Death };
    const evs: Ev[] = [
      ...lines.filter((l) => l.worker === w).map((line, i): Ev => ({ key: line.loggedAt, order: i, line })),
      // A line logged in the same ms as a death was written before it.
      ...deaths.filter((d) => d.worker === w).map((death): Ev => ({ key: death.at, order: Number.MAX_SAFE_INTEGER, death })),
    ];
    evs.sort((a, b) => a.key - b.key || a.order - b.order);
    const open = new Map<string, { id: string; from: number; line: TaskLine }>();
    const push = (name: string, from: number, to: number, end: Run['end'], stop?: TaskLine): void => {
      const o = open.get(name)!;
      if (to < from) {
        anomalies.push(`${w}: ${name} (${o.id}) ends at ${to}, before it started at ${from}; counted as zero-length`);
        to = from;
      }
      runs.push({ worker: w, name, id: o.id, from, to, end, startLine: o.line.raw, ...(stop ? { stopLine: stop.raw } : {}) });
    };
    const close = (name: string, to: number, end: Run['end'], stop?: TaskLine): void => {
      push(name, open.get(name)!.from, to, end, stop);
      open.delete(name);
    };
    for (const ev of evs) {
      if (ev.death) {
        for (const name of [...open.keys()]) close(name, ev.death.at, 'killed');
        continue;
      }
      const l = ev.line!;
      if (l.event === 'started') {
        if (open.has(l.name)) {
          anomalies.push(`${w}: ${l.name} started again (line ${l.lineNo}) with no stop since line ${open.get(l.name)!.line.lineNo}`);
          close(l.name, l.at, 'restarted');
        }
        open.set(l.name, { id: l.id, from: l.at, line: l });
        continue;
      }
      const o = open.get(l.name);
      if (!o || o.id !== l.id) {
        anomalies.push(`${w}: ${l.name} (${l.id}) stopped (line ${l.lineNo}) but was not running there`);
        continue;
      }
      // Only a run under way when the pause began: one started after the resume is new work past the lease.
      const p = o.from < l.at ? resumed(l) : undefined;
      if (p) {
        // The claimed part, then from SIGCONT until the fence began (its first line after the resume), when the task was terminated.
        if (o.from < l.at) push(l.name, o.from, l.at, 'stopped', l);
        const fence = fences.find((a) => a.time >= p.to && a.lineNo < l.lineNo);
        close(l.name, Math.min(l.loggedAt, fence?.time ?? l.loggedAt), 'resumed-past-lease', l);
        runs[runs.length - 1]!.from = Math.max(o.from, p.to);
        continue;
      }
      const x = refutation(l);
      if (!x) {
        close(l.name, l.at, 'stopped', l);
        continue;
      }
      refuted.push(
        `${w}: ${l.name} (${l.id}) stop claims it ended at ${l.at}, but line ${x.lineNo} shows the worker ran at ${x.time}: ${x.raw}\n` +
          `  stop (line ${l.lineNo}): ${l.raw}`,
      );
      // The claimed part (if the task started before the claimed end), then what the log shows it ran after it.
      if (o.from < l.at) push(l.name, o.from, l.at, 'stopped', l);
      close(l.name, l.loggedAt, 'ran-after-claimed-end', l);
      runs[runs.length - 1]!.from = Math.max(o.from, x.time);
    }
    for (const name of [...open.keys()]) close(name, endOfRun, 'end-of-run');
  }
  return { runs, anomalies, refuted };
}

export interface Overlap {
  name: string;
  id: string;
  workers: [string, string];
  from: number;
  to: number;
  ms: number;
  runs: [Run, Run];
}

function overlapsOf(runs: Run[], key: (r: Run) => string): Overlap[] {
  const groups = new Map<string, Run[]>();
  for (const r of runs) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
  const out: Overlap[] = [];
  for (const group of groups.values()) {
    for (let i = 0; i < group.length; i++) {
      for (let j = i + 1; j < group.length; j++) {
        const a = group[i]!;
        const b = group[j]!;
        if (a.worker === b.worker) continue;
        const from = Math.max(a.from, b.from);
        const to = Math.min(a.to, b.to);
        if (to > from) {
          const [x, y] = a.from <= b.from ? [a, b] : [b, a];
          out.push({ name: a.name, id: a.id === b.id ? a.id : `${x.id}|${y.id}`, workers: [x.worker, y.worker], from, to, ms: to - from, runs: [x, y] });
        }
      }
    }
  }
  return out.sort((p, q) => q.ms - p.ms);
}

/** findOverlaps: the same resource (name and id) running on two workers at once. */
export function findOverlaps(runs: Run[]): Overlap[] {
  return overlapsOf(runs, (r) => `${r.name}\u0000${r.id}`);
}

/**
 * findNameOverlaps: the same name with different ids on two workers at once
 * (a deleted resource still stopping while its re-created successor starts).
 * Not a violation: a re-created resource is a different resource.
 */
export function findNameOverlaps(runs: Run[]): Overlap[] {
  return overlapsOf(runs, (r) => r.name).filter((o) => o.runs[0].id !== o.runs[1].id);
}

/**
 * unexplainedLateStops: stop lines written well after the end they claim,
 * where no injected pause of that worker covers the claimed end. Notes, not
 * violations: an event loop blocked by load also delays the fence.
 */
export function unexplainedLateStops(lines: TaskLine[], pauses: Pause[], thresholdMs: number): TaskLine[] {
  return lines.filter(
    (l) =>
      l.event === 'stopped' &&
      l.loggedAt - l.at > thresholdMs &&
      !pauses.some((p) => p.target === l.worker && p.from <= l.at && l.at <= p.to),
  );
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
  const ops = checkOps(input.ops, input.final.list);
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
