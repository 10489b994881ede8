// What a task's reports do to its resource: started and progress are noted
// in memory, a checkpoint is written with the record, completed ends it, and
// a failure leads to what the restart policy says: give up (the resource is
// failed), or start again after a backoff that doubles from delayMs up to
// maxDelayMs, less up to 25% jitter so that many tasks failing together do
// not restart in lockstep. From the second failure on, a policy with
// `reschedule` prefers a worker that has not failed the task (Nomad's
// reschedule; Kubernetes' CrashLoopBackOff doubles the same way). During a
// handoff, the old owner's reports are taken too (reportLeaving).

import { ResourceState, type Json, type Spec, type TaskReport } from '#protocol/messages.js';
import { restartPolicyOf } from '#protocol/validate.js';
import type { ClusterState } from './state.js';
import type { Assignment, Entry } from './records.js';
import type { Tick } from './batch.js';
import { endHandoff, release } from './handoffs.js';
import { place } from './placement.js';
import { noteActivity, noteStarted } from './shards.js';
import { endRun } from './schedules.js';

/** What a report got: accepted, or refused with a reason. */
export type ReportOutcome = { ok: true } | { ok: false; code: 'NOT_OWNER'; message: string };

type AfterFailure = { give: true } | { give: false; delayMs: number; reschedule: boolean };

/** JITTER: the backoff is reduced by up to this fraction. */
const JITTER = 0.25;

/** afterFailure decides, given the failures so far (this one included); random() is in [0, 1). */
function afterFailure(spec: Spec, failures: number, random: () => number): AfterFailure {
  const p = restartPolicyOf(spec);
  if (failures >= p.attempts) return { give: true };
  const base = Math.min(p.maxDelayMs, p.delayMs * 2 ** Math.min(failures - 1, 40));
  return { give: false, delayMs: Math.round(base * (1 - JITTER * random())), reschedule: p.reschedule && failures >= 2 };
}

/** Built only when refused: when a worker's lease expires, tens of thousands of its reports are. */
const refused = (worker: string, r: TaskReport): ReportOutcome => ({
  ok: false,
  code: 'NOT_OWNER',
  message: `${worker} does not run attempt ${r.attempt} of ${r.name} (${r.id})`,
});

const owns = (a: Assignment | undefined, worker: string, epoch: string, attempt: number): boolean =>
  !!a && a.worker === worker && a.epoch === epoch && a.attempt === attempt;

/** report folds one task report from a worker incarnation into the state, if that incarnation runs that attempt. */
export function report(s: ClusterState, worker: string, epoch: string, r: TaskReport, tick: Tick): ReportOutcome {
  const e = s.resources.get(r.name);
  if (!e || e.rec.id !== r.id) return refused(worker, r);
  if (e.handoff && owns(e.handoff.from, worker, epoch, r.attempt)) return reportLeaving(s, e, worker, r, tick);
  // A worker that is gone may still own assignments not yet moved (workerDown): it has fenced itself.
  if (!owns(e.assign, worker, epoch, r.attempt) || e.assign?.hold || !s.workers.has(worker)) return refused(worker, r);
  switch (r.type) {
    case 'stopped':
      break;
    case 'started':
      if (e.rec.state !== ResourceState.running) e.rec = { ...e.rec, state: ResourceState.running };
      noteStarted(e, r.attempt);
      break;
    case 'progress':
      e.rec = { ...e.rec, progress: r.progress };
      break;
    case 'checkpoint':
      if (r.seq <= (e.cpSeq ?? 0)) break; // a late duplicate: a newer one is already written
      checkpoint(s, e, worker, r, tick);
      break;
    case 'completed':
      finish(s, e, worker, ResourceState.completed, r.result);
      s.log.tasks.push({ kind: 'completed', name: r.name, id: r.id, worker });
      break;
    case 'failed':
      fail(s, e, worker, r.error, tick);
      break;
    case 'activity':
      noteActivity(s, e, r);
      break;
  }
  return { ok: true };
}

function checkpoint(s: ClusterState, e: Entry, worker: string, r: Extract<TaskReport, { type: 'checkpoint' }>, tick: Tick): void {
  e.cpSeq = r.seq;
  s.touch(r.name);
  s.log.checkpoints.set(r.name, { id: r.id, attempt: r.attempt, seq: r.seq, worker, state: r.state, at: tick.wall });
  if (!e.rec.checkpoint) e.rec = { ...e.rec, checkpoint: true };
}

/**
 * reportLeaving takes what the old owner of a handoff says: its last
 * checkpoints count, and once it says it stopped (or ended on its own),
 * the new owner may start.
 */
function reportLeaving(s: ClusterState, e: Entry, worker: string, r: TaskReport, tick: Tick): ReportOutcome {
  // A run replaced by a newer one (spec.schedule overlap "replace"): its end is only the stop, and the new run starts afresh.
  if (e.handoff?.reason === 'replace' && r.type !== 'stopped' && r.type !== 'failed' && r.type !== 'completed') return { ok: true };
  if (e.handoff?.reason === 'replace' && r.type === 'completed') return release(s, r.name), { ok: true };
  switch (r.type) {
    case 'checkpoint':
      if (r.seq > (e.cpSeq ?? 0)) {
        checkpoint(s, e, worker, r, tick);
        if (e.assign && !e.assign.checkpoint) e.assign = { ...e.assign, checkpoint: true };
      }
      break;
    case 'completed':
      // It finished before it heard of the move: done, and the new owner never starts.
      finish(s, e, e.rec.worker ?? worker, ResourceState.completed, r.result);
      s.log.tasks.push({ kind: 'completed', name: r.name, id: r.id, worker });
      break;
    case 'stopped':
    case 'failed':
      // Stopped for the move (a failure while stopping is the stop, not the task's fault).
      release(s, r.name);
      break;
    default:
      break;
  }
  return { ok: true };
}

function finish(s: ClusterState, e: Entry, worker: string, state: ResourceState, result?: Json): void {
  s.touch(e.rec.name);
  s.pending.delete(e.rec.name);
  s.free(worker, e.rec.name);
  endHandoff(s, e);
  const { delayMs: _d, reason: _r, ...rest } = e.rec;
  e.rec = { ...rest, worker: null, state, ...(result !== undefined ? { result } : {}) };
  e.assign = undefined;
  if (state === ResourceState.completed || state === ResourceState.failed) endRun(s, e, state);
}

function fail(s: ClusterState, e: Entry, worker: string, error: string, tick: Tick): void {
  const failures = e.rec.failures + 1;
  const failedOn = [...new Set([...(e.rec.failedOn ?? []), worker])];
  const next = afterFailure(e.rec.spec, failures, tick.random);
  const base = { name: e.rec.name, id: e.rec.id, worker };
  e.rec = { ...e.rec, failures, failedOn, error };
  s.log.tasks.push({ kind: 'failed', ...base, error, failures });
  if (next.give) return finish(s, e, worker, ResourceState.failed);
  // The second and later failures go elsewhere if the policy says so and there is an elsewhere.
  const avoid = next.reschedule ? new Set(failedOn) : undefined;
  place(s, e, { ...(avoid ? { avoid } : {}), delayMs: next.delayMs, state: ResourceState.restarting, reason: 'reschedule' });
  if (e.rec.worker) s.log.tasks.push({ kind: 'restarting', ...base, worker: e.rec.worker, delayMs: next.delayMs, attempt: e.rec.attempt });
}
