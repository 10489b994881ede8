// What an update (resource.apply) does to a resource's schedule. The rules
// read "the new spec.schedule takes effect from the apply on":
//
// - Changed *when* (cron, timeZone, every, startAt, endAt, jitterMs, limit):
//   no fire time up to now is fired, caught up or counted under either rule;
//   the next fire is the new rule's first after now. The schedule's own
//   queued fires go (counted as skipped, "spec.schedule changed"): they were
//   the old rule's times. Queued triggers and backfills stay (a person asked
//   for each). A change of `overlap` drops the schedule's queued fires too.
// - Changed only *how* (overlap, catchupWindowMs, history, note): the
//   schedule keeps its place, so a fire due now still fires.
// - `paused` changed in the spec: the schedule is paused (with the spec's
//   note) or resumed, as schedule.pause and resume do. Left alone in the
//   spec, a pause made by schedule.pause stays.
// - A run going on goes on: the schedule is not the task's, so a change to it
//   alone starts no new attempt (a change to the task's part is a rollout
//   within the same run, apply.ts).
// - Gained, idle (pending, completed, failed): the resource waits for its
//   first fire, as one added with that schedule does. Gained while an
//   attempt runs: that attempt becomes a run (cause "trigger", fired now),
//   so the overlap policy applies to fires while it goes and its end is
//   recorded; its results carry no run number (its assignment was written
//   before). A resource that had a schedule before carries on its run
//   numbers, so results of different runs never share a number.
// - Lost, with a run going on: the run ends as its task does, and then the
//   resource stays completed or failed; queued fires go. Lost while idle: the
//   resource is what it would be without a schedule: if a run ended, its
//   last run's state and result (completed or failed); if none ever ran, it
//   runs once now, as a resource added without a schedule does. The run
//   history stays in the record (for its numbering) but is not shown.

import { ResourceState, type Spec } from '#protocol/messages.js';
import { scheduleOf, type ScheduleSpec } from '#protocol/schedule.js';
import type { StoredSchedule } from '#protocol/stored-schedule.js';
import type { ClusterState } from './state.js';
import type { Entry } from './records.js';
import { place } from './placement.js';
import { firesLeft, pause, resume, setSched } from './schedules.js';

const iso = (t: number): string => new Date(t).toISOString();

/** When a schedule fires, as against how a fire runs. */
const WHEN: ReadonlyArray<keyof ScheduleSpec> = ['cron', 'timeZone', 'everyMs', 'startAt', 'endAt', 'jitterMs', 'limit'];

const changed = (a: ScheduleSpec, b: ScheduleSpec, fields: ReadonlyArray<keyof ScheduleSpec>): boolean => fields.some((k) => a[k] !== b[k]);

/** isIdle: no attempt of the resource is assigned or waiting for a place as part of a run or a plain start. */
export const isIdle = (e: Pick<Entry, 'rec' | 'assign' | 'handoff'>): boolean =>
  !e.assign && !e.handoff && e.rec.worker === null && !e.rec.sched?.current;

/**
 * respecSchedule applies the schedule rules above to a resource whose record
 * already holds its new spec; `was` is the spec before the update.
 */
export function respecSchedule(s: ClusterState, e: Entry, was: Spec): void {
  const before = scheduleOf(was);
  const after = scheduleOf(e.rec.spec);
  if (!before && !after) return;
  if (!before) gained(s, e, after!);
  else if (!after) lost(s, e);
  else if (e.rec.sched) changedSchedule(s, e, before, after);
  else gained(s, e, after);
}

function gained(s: ClusterState, e: Entry, sch: ScheduleSpec): void {
  const wall = s.schedules.wall;
  const prior = e.rec.sched;
  const idle = isIdle(e);
  const runs = (prior?.runs ?? 0) + (idle ? 0 : 1);
  const sched: StoredSchedule = {
    through: Math.max(prior?.through ?? 0, wall),
    runs,
    fired: prior?.fired ?? 0,
    queued: [],
    skipped: prior?.skipped ?? 0,
    history: prior?.history ?? [],
    ...(idle ? {} : { current: { run: runs, fireTime: wall, cause: 'trigger' as const, state: 'running' as const, startedAt: iso(wall) } }),
    ...(sch.paused ? { paused: { ...(sch.note !== undefined ? { note: sch.note } : {}), at: iso(wall) } } : {}),
  };
  setSched(s, e, sched);
  s.schedules.names.add(e.rec.name);
  if (!idle) return;
  s.pending.delete(e.rec.name);
  const { reason: _r, ...rest } = e.rec;
  e.rec = { ...rest, state: ResourceState.scheduled };
}

function lost(s: ClusterState, e: Entry): void {
  const st = e.rec.sched;
  if (!st) return;
  dropQueued(s, e, () => true);
  const { paused: _p, ...kept } = e.rec.sched!;
  setSched(s, e, kept);
  if (st.current || e.rec.state !== ResourceState.scheduled) return;
  if (st.runs === 0) return place(s, e);
  e.rec = { ...e.rec, state: lastState(e) };
}

/** lastState is how the newest run ended, as a resource state (the record's error says it when the history keeps no run). */
const lastState = (e: Pick<Entry, 'rec'>): ResourceState =>
  (e.rec.sched?.history[0]?.state ?? (e.rec.error !== undefined ? 'failed' : 'completed')) === 'failed' ? ResourceState.failed : ResourceState.completed;

function changedSchedule(s: ClusterState, e: Entry, before: ScheduleSpec, after: ScheduleSpec): void {
  const when = changed(before, after, WHEN);
  if (when || before.overlap !== after.overlap) dropQueued(s, e, (cause) => cause === 'schedule');
  if (when) {
    const st = e.rec.sched!;
    setSched(s, e, { ...st, through: Math.max(st.through, s.schedules.wall) });
  }
  if (before.paused !== after.paused) {
    if (after.paused && !e.rec.sched!.paused) pause(s, e, after.note);
    else if (!after.paused && e.rec.sched!.paused) resume(s, e, undefined);
  }
  if (e.rec.sched!.current) return;
  // Idle: waiting for a fire if one is left, else as the last run ended.
  if (firesLeft(e)) {
    if (e.rec.state !== ResourceState.scheduled) e.rec = { ...e.rec, state: ResourceState.scheduled };
  } else if (e.rec.state === ResourceState.scheduled && e.rec.sched!.runs > 0) {
    e.rec = { ...e.rec, state: lastState(e) };
  }
}

/** dropQueued removes the queued fires `which` picks, announcing them as skipped. */
function dropQueued(s: ClusterState, e: Entry, which: (cause: string) => boolean): void {
  const st = e.rec.sched!;
  const gone = st.queued.filter((q) => which(q.cause));
  if (gone.length === 0) return;
  setSched(s, e, { ...st, queued: st.queued.filter((q) => !which(q.cause)), skipped: st.skipped + gone.length });
  s.schedules.skipped(e.rec.name, gone[0]!.fireTime, 'spec.schedule changed', gone.length, gone[gone.length - 1]!.fireTime);
}
