// Schedules: a resource with spec.schedule runs once per fire time. Each
// fire starts a run (a new attempt series with its own number, result and
// state); a fire that finds the previous run going follows the overlap
// policy (skip, queue, replace, allow). Time is the batch's wall clock
// (ctx.wall) only, so these rules are tested on plain values.
//
// Exactly once per fire time: the record's `sched.through` says which fire
// times are handled, and it changes in the same record write that starts
// (or queues, or skips) the run, so the fire commits with its run in one
// unit. A leader that dies before its commit leaves `through` behind, and
// the next leader fires that time itself; one that committed leaves it
// ahead, and the next leader does not fire it again. A fire missed by more
// than the catch-up window (a long outage) is skipped and counted.

import { ResourceState } from '#protocol/messages.js';
import { fireAfter, fireTimes, jitterOf, scheduleOf, type Overlap, type ScheduleSpec } from '#protocol/schedule.js';
import type { RunCause, RunView, ScheduleView } from '#protocol/schedule-ops.js';
import type { StoredRun, StoredSchedule } from '#protocol/stored-schedule.js';
import type { ClusterState } from './state.js';
import type { Entry } from './records.js';
import { place } from './placement.js';
import { ScheduleBook } from './schedule-book.js';

export { ScheduleBook };

/** Most fires that wait for a running run (overlap "queue", backfill); later ones are skipped. */
export const MAX_QUEUED = 100;
/** Most missed fire times one batch counts one by one; past that it jumps to the catch-up window. */
const MAX_COUNTED = 10_000;
/** A run's result is kept in its history only up to this size (JSON bytes): the record stays small. */
const MAX_RESULT_BYTES = 4096;

const iso = (t: number): string => new Date(t).toISOString();

/** startSchedule makes a new resource with a schedule wait for its first fire; false when it has none. */
export function startSchedule(s: ClusterState, e: Entry, wall: number): boolean {
  const sch = scheduleOf(e.rec.spec);
  if (!sch) return false;
  const sched: StoredSchedule = {
    through: wall,
    runs: 0,
    fired: 0,
    queued: [],
    skipped: 0,
    history: [],
    ...(sch.paused ? { paused: { ...(sch.note !== undefined ? { note: sch.note } : {}), at: iso(wall) } } : {}),
  };
  e.rec = { ...e.rec, state: ResourceState.scheduled, sched };
  s.schedules.names.add(e.rec.name);
  return true;
}

/**
 * fireSchedules fires every schedule whose time has come (fire time plus
 * its jitter at or before the batch's wall time), and sets the book's
 * wakeAt to the earliest fire still ahead.
 */
export function fireSchedules(s: ClusterState): void {
  const book = s.schedules;
  if (!book.indexed) {
    for (const [name, e] of s.resources) if (e.rec.sched) book.names.add(name);
    book.indexed = true;
  }
  let wakeAt: number | undefined;
  for (const name of book.names) {
    const e = s.resources.get(name);
    const sch = e && scheduleOf(e.rec.spec);
    if (!e?.rec.sched || !sch) {
      book.names.delete(name);
      continue;
    }
    let due = dueAt(book, e, sch);
    if (due !== undefined && due <= book.wall) {
      fireDue(s, e, sch);
      due = dueAt(book, e, sch);
    }
    if (due !== undefined && (wakeAt === undefined || due < wakeAt)) wakeAt = due;
  }
  book.wakeAt = wakeAt;
}

/** dueAt is when the next fire of a schedule starts (its time plus jitter), undefined while paused or when none is left. */
function dueAt(book: ScheduleBook, e: Entry, sch: ScheduleSpec): number | undefined {
  const st = e.rec.sched!;
  if (st.paused || (sch.limit !== undefined && st.fired >= sch.limit)) return undefined;
  return book.cached(st, () => {
    const f = fireAfter(sch, st.through);
    return f === undefined ? undefined : f + jitterOf(e.rec.name, f, sch.jitterMs);
  });
}

function fireDue(s: ClusterState, e: Entry, sch: ScheduleSpec): void {
  const now = s.schedules.wall;
  let missed = 0;
  let firstMissed = 0;
  let lastMissed = 0;
  const sayMissed = (): void => {
    if (missed > 0) s.schedules.skipped(e.rec.name, firstMissed, 'catch-up window', missed, lastMissed);
    missed = 0;
  };
  for (let counted = 0; ; counted++) {
    const st = e.rec.sched!;
    if (sch.limit !== undefined && st.fired >= sch.limit) break;
    const f = fireAfter(sch, st.through);
    if (f === undefined || f + jitterOf(e.rec.name, f, sch.jitterMs) > now) break;
    if (now - f > sch.catchupWindowMs) {
      if (counted >= MAX_COUNTED) {
        // Too many to count one by one: the rest of the missed ones go at once.
        const inWindow = fireAfter(sch, now - sch.catchupWindowMs - 1);
        setSched(s, e, { ...st, through: (inWindow ?? now + 1) - 1 });
        continue;
      }
      if (missed++ === 0) firstMissed = f;
      lastMissed = f;
      setSched(s, e, { ...st, through: f, skipped: st.skipped + 1 });
      continue;
    }
    sayMissed();
    setSched(s, e, { ...st, through: f });
    fire(s, e, f, 'schedule', sch.overlap);
  }
  sayMissed();
}

/** setSched replaces a record's schedule bookkeeping (records are replaced, never changed in place). */
function setSched(s: ClusterState, e: Entry, sched: StoredSchedule): void {
  s.touch(e.rec.name);
  e.rec = { ...e.rec, sched };
}

/**
 * fire starts a run for `fireTime` if none is going; otherwise the overlap
 * policy decides. Returns what it did.
 */
export function fire(s: ClusterState, e: Entry, fireTime: number, cause: RunCause, overlap: Overlap): 'started' | 'queued' | 'skipped' {
  const st = e.rec.sched!;
  if (!st.current) {
    startRun(s, e, fireTime, cause, false);
    return 'started';
  }
  switch (overlap) {
    case 'skip':
      setSched(s, e, { ...st, skipped: st.skipped + 1 });
      s.schedules.skipped(e.rec.name, fireTime, `overlap: run ${st.current.run} is still going`, 1);
      return 'skipped';
    case 'queue':
      if (st.queued.length >= MAX_QUEUED) {
        setSched(s, e, { ...st, skipped: st.skipped + 1 });
        s.schedules.skipped(e.rec.name, fireTime, `overlap: ${MAX_QUEUED} fires already wait`, 1);
        return 'skipped';
      }
      setSched(s, e, { ...st, queued: [...st.queued, { fireTime, cause }] });
      return 'queued';
    case 'replace':
    case 'allow':
      endCurrent(s, e, 'replaced');
      startRun(s, e, fireTime, cause, overlap === 'replace');
      return 'started';
  }
}

/**
 * startRun gives the resource a new run: a new attempt series from a clean
 * slate (no failures, result or checkpoint of an earlier run). With
 * stopFirst, the attempt still running is handed off: the new one is held
 * until the old one has stopped (stop before start).
 */
function startRun(s: ClusterState, e: Entry, fireTime: number, cause: RunCause, stopFirst: boolean): void {
  const st = e.rec.sched!;
  const run = st.runs + 1;
  const current: StoredRun = { run, fireTime, cause, state: 'running', startedAt: iso(s.schedules.wall) };
  const { result: _r, error: _e, failedOn: _f, checkpoint: _c, ...rest } = e.rec;
  s.touch(e.rec.name);
  e.rec = { ...rest, failures: 0, sched: { ...st, runs: run, fired: st.fired + (cause === 'schedule' ? 1 : 0), current } };
  place(s, e, stopFirst ? { handoff: true, reason: 'replace' } : {});
  s.schedules.event({ kind: 'schedule.fired', payload: { name: e.rec.name, run, fireTime: iso(fireTime), cause } });
}

/** endCurrent closes the running run into the history. */
function endCurrent(s: ClusterState, e: Entry, state: StoredRun['state']): void {
  const st = e.rec.sched!;
  const cur = st.current;
  if (!cur) return;
  const sch = scheduleOf(e.rec.spec);
  const result = e.rec.result;
  const keep = result !== undefined && JSON.stringify(result).length <= MAX_RESULT_BYTES;
  const ended: StoredRun = {
    ...cur,
    state,
    endedAt: iso(s.schedules.wall),
    ...(keep ? { result } : {}),
    ...(state === 'failed' && e.rec.error !== undefined ? { error: e.rec.error } : {}),
  };
  const { current: _c, ...rest } = st;
  setSched(s, e, { ...rest, history: [ended, ...st.history].slice(0, sch?.history ?? st.history.length + 1) });
  const payload = { name: e.rec.name, run: cur.run, fireTime: iso(cur.fireTime) };
  if (state === 'completed') s.schedules.event({ kind: 'run.completed', payload });
  else if (state === 'failed') s.schedules.event({ kind: 'run.failed', payload: { ...payload, error: e.rec.error ?? 'failed' } });
}

/**
 * endRun is called when a scheduled resource's task ended for good
 * (completed, or failed past its restart policy): the run ends, a queued
 * fire starts at once, and otherwise the resource waits for its next fire.
 */
export function endRun(s: ClusterState, e: Entry, state: 'completed' | 'failed'): void {
  if (!e.rec.sched?.current) return;
  endCurrent(s, e, state);
  const st = e.rec.sched;
  const [next, ...rest] = st.queued;
  if (next) {
    setSched(s, e, { ...st, queued: rest });
    startRun(s, e, next.fireTime, next.cause, false);
    return;
  }
  const sch = scheduleOf(e.rec.spec);
  const more = sch !== undefined && (sch.limit === undefined || st.fired < sch.limit) && fireAfter(sch, st.through) !== undefined;
  if (more) e.rec = { ...e.rec, state: ResourceState.scheduled };
}

/** pause stops fires (a running run goes on); resume counts what was missed meanwhile as skipped. */
export function pause(s: ClusterState, e: Entry, note: string | undefined): void {
  const st = e.rec.sched!;
  setSched(s, e, { ...st, paused: { ...(note !== undefined ? { note } : {}), at: iso(s.schedules.wall) } });
  s.schedules.event({ kind: 'schedule.paused', payload: { name: e.rec.name, ...(note !== undefined ? { note } : {}) } });
}

export function resume(s: ClusterState, e: Entry, note: string | undefined): void {
  const sch = scheduleOf(e.rec.spec)!;
  const { paused, ...st } = e.rec.sched!;
  const now = s.schedules.wall;
  const missed = paused ? fireTimes(sch, st.through, MAX_COUNTED).filter((t) => t <= now) : [];
  setSched(s, e, { ...st, through: Math.max(st.through, now), skipped: st.skipped + missed.length });
  if (missed.length > 0) s.schedules.skipped(e.rec.name, missed[0]!, 'paused', missed.length, missed[missed.length - 1]);
  s.schedules.event({ kind: 'schedule.resumed', payload: { name: e.rec.name, ...(note !== undefined ? { note } : {}) } });
}

/** backfill fires every time of the schedule from `from` to `to` (both included), pause and catch-up window aside. */
export function backfill(s: ClusterState, e: Entry, times: readonly number[], overlap: Overlap): { started: number; queued: number; skipped: number } {
  const out = { started: 0, queued: 0, skipped: 0 };
  for (const t of times) out[fire(s, e, t, 'backfill', overlap)]++;
  return out;
}

/** backfillTimes lists the fire times in [from, to]; more than `max` is an error for the caller. */
export function backfillTimes(sch: ScheduleSpec, from: number, to: number, max: number): number[] {
  return fireTimes(sch, from - 1, max + 1).filter((t) => t <= to);
}

const runView = (r: StoredRun): RunView => ({
  run: r.run,
  fireTime: iso(r.fireTime),
  cause: r.cause,
  state: r.state,
  startedAt: r.startedAt,
  ...(r.endedAt !== undefined ? { endedAt: r.endedAt } : {}),
  ...(r.result !== undefined ? { result: r.result } : {}),
  ...(r.error !== undefined ? { error: r.error } : {}),
});

/** scheduleView is what resource.get shows of a scheduled resource at wall time `now`. */
export function scheduleView(e: Pick<Entry, 'rec'>, now: number): { schedule: ScheduleView; runs: RunView[] } | undefined {
  const st = e.rec.sched;
  const sch = scheduleOf(e.rec.spec);
  if (!st || !sch) return undefined;
  const left = sch.limit === undefined ? 3 : Math.max(0, Math.min(3, sch.limit - st.fired));
  // A fire due but still within its jitter is next too.
  const next = st.paused ? [] : fireTimes(sch, Math.max(st.through, now - sch.jitterMs), left).map(iso);
  return {
    schedule: {
      next,
      paused: st.paused !== undefined,
      ...(st.paused?.note !== undefined ? { note: st.paused.note } : {}),
      ...(st.paused ? { pausedAt: st.paused.at } : {}),
      ...(st.current ? { running: runView(st.current) } : {}),
      queued: st.queued.map((q) => iso(q.fireTime)),
      runs: st.runs,
      skipped: st.skipped,
    },
    runs: st.history.map(runView),
  };
}
