// The workers' task runs, from their logs: each task's run intervals, and
// where two of them overlap.
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
