// The rules for workers: one joins or comes back as a new incarnation
// (workerUp: a new attempt for each of its resources), one is lost
// (workerDown: its resources move), and what a worker says it runs
// (markRunning). Whether a worker is lost is the shell's to find out
// (liveness.ts, the workers watch); what follows from it is decided here.

import { ResourceState } from '#protocol/messages.js';
import type { ClusterState } from './state.js';
import { WorkerEntry } from './records.js';
import { release } from './handoffs.js';
import { placePending } from './placement.js';

/** applyCordon gives a worker the cordon etcd has for its id, if any. */
export function applyCordon(s: ClusterState, w: WorkerEntry): void {
  const c = s.cordons.get(w.id);
  w.cordoned = c !== undefined;
  w.draining = c?.draining ?? false;
}

/** workerUp records a live worker; a new incarnation's resources start again there (a new attempt each). */
export function workerUp(s: ClusterState, id: string, capacity: number, epoch: string, kinds: Iterable<string>, labels: Record<string, string> = {}): void {
  const w = s.workers.get(id);
  s.toTry = Infinity;
  if (!w) {
    const nw = new WorkerEntry(id, capacity, epoch, new Set(kinds), labels);
    applyCordon(s, nw);
    s.workers.set(id, nw);
    return placePending(s);
  }
  w.capacity = capacity;
  w.kinds = new Set(kinds);
  w.labels = labels;
  if (w.epoch === epoch) return placePending(s);
  // A new incarnation: the old one's lease is gone and it fenced itself, so
  // whatever was leaving it may start where it is going.
  for (const name of [...(s.leaving.get(id) ?? [])]) if (s.resources.get(name)?.handoff?.from.epoch !== epoch) release(s, name);
  w.epoch = epoch;
  for (const name of w.names) s.reattempt.add(name);
  reattempts(s);
  placePending(s);
}

/**
 * reattempts gives each resource whose worker came back as a new
 * incarnation its new attempt there, as far as the batch's budget goes.
 * What is left keeps its old assignment meanwhile: the new incarnation
 * ignores it, and the old one has fenced itself.
 */
export function reattempts(s: ClusterState): void {
  s.backlog(() => s.within(s.reattempt, (name) => {
    const e = s.resources.get(name);
    const w = e?.rec.worker ? s.workers.get(e.rec.worker) : undefined;
    // Moved, finished or deleted meanwhile, or already given one.
    if (!e || !w || e.assign?.worker !== w.id || e.assign.epoch === w.epoch) return;
    s.touch(name);
    const attempt = e.rec.attempt + 1;
    e.rec = { ...e.rec, attempt, state: ResourceState.starting };
    // Still held if it is coming from another worker that has not stopped it yet.
    e.assign = { worker: w.id, epoch: w.epoch, attempt, ...s.fenceWaits.startAfter(name), ...(e.rec.checkpoint ? { checkpoint: true } : {}), ...(e.handoff ? { hold: true } : {}) };
    e.cpSeq = undefined;
  }));
}

/**
 * workerDown forgets a worker and moves each of its resources: a new
 * attempt elsewhere, not a failure. If the worker may still run them until
 * `fencedBy` (we revoked it; it is fencing itself), they are written
 * elsewhere now and start when that has passed: the writes of a thousand
 * moves overlap the fence window instead of following it.
 */
export function workerDown(s: ClusterState, id: string, fencedBy?: number): void {
  const wait = (name: string) => {
    if (fencedBy !== undefined) s.fenceWaits.wait(name, fencedBy);
  };
  const leaving = [...(s.leaving.get(id) ?? [])];
  // What was leaving it may start where it is going: its old owner is gone, or fenced by then.
  for (const name of leaving) {
    wait(name);
    release(s, name);
  }
  const w = s.workers.get(id);
  if (!w) return;
  s.workers.delete(id);
  for (const name of w.names) wait(name);
  // Placed as the batches' budgets allow (placePending): until then each
  // keeps its record and assignment, which the move rewrites.
  for (const name of w.names) s.pending.add(name);
  s.toTry = Infinity;
  placePending(s);
}

/** markRunning notes what a worker says it runs: attempts it owns that it has started are running. */
export function markRunning(s: ClusterState, worker: string, tasks: ReadonlyArray<{ name: string; id: string; attempt: number }>): void {
  for (const t of tasks) {
    const e = s.resources.get(t.name);
    const a = e?.assign;
    if (!e || !a || a.hold || e.rec.id !== t.id || a.worker !== worker || a.attempt !== t.attempt) continue;
    if (e.rec.state === ResourceState.starting || e.rec.state === ResourceState.restarting) e.rec = { ...e.rec, state: ResourceState.running };
  }
}
