// Loading and repair: a new leader's state is built from what etcd holds at
// one revision (the shell's loader.ts decodes it and calls these in order:
// cordons, workers, fencing notes, resources, then repair). repair marks
// what etcd must be made to agree with; the batches then do it as their
// budgets allow (restamps, and placePending for what a dead worker held).

import type { MoveReason } from '#protocol/messages.js';
import { isShardedRecord } from '#protocol/shards.js';
import type { StoredHandoff, StoredResource } from '#protocol/stored.js';
import type { ClusterState } from './state.js';
import { sameAssign, TERMINAL, WorkerEntry, type Assignment, type Cordon, type Entry } from './records.js';
import { beginHandoff, release } from './handoffs.js';
import { applyCordon } from './workers.js';
import { restoreShards } from './shards.js';

/** loadCordon records a cordon as etcd has it; call before loadWorker. */
export function loadCordon(s: ClusterState, id: string, c: Cordon): void {
  s.cordons.set(id, c);
}

export function loadWorker(s: ClusterState, id: string, capacity: number, epoch: string, kinds: Iterable<string>, labels: Record<string, string> = {}): void {
  const w = new WorkerEntry(id, capacity, epoch, new Set(kinds), labels);
  applyCordon(s, w);
  s.workers.set(id, w);
}

/** loadFencing records a revoked worker that may run its tasks until `until` (clock time); call before repair. */
export function loadFencing(s: ClusterState, id: string, until: number): void {
  s.fenceWaits.note(id, until);
}

/** loadResource adds a resource as etcd has it; call after every loadWorker. */
export function loadResource(s: ClusterState, rec: StoredResource, revision: number, assign: Assignment | undefined, handoff?: StoredHandoff): void {
  const e: Entry = { rec, revision, assign };
  s.resources.set(rec.name, e);
  if (handoff && assign) {
    e.assign = { ...assign, hold: true };
    beginHandoff(s, e, { worker: handoff.worker, epoch: handoff.epoch, attempt: handoff.attempt }, handoff.reason as MoveReason);
  }
  s.renamed();
  const w = rec.worker ? s.workers.get(rec.worker) : undefined;
  if (w) w.names.add(rec.name);
  // A sharded resource's own record runs nowhere: its shards are placed.
  else if (!TERMINAL.has(rec.state) && !isShardedRecord(rec.name, rec.spec)) s.pending.add(rec.name);
}

/**
 * adoptResources takes over a read's resources as the state's own (the state
 * was made with `entries`): each entry as its record says, `assign` being
 * the assignment the record claims and `handoff` as stored. `byWorker` groups
 * their names by the worker each record names; a live worker's group becomes
 * its name set. `assigned` holds, by worker, the names whose assignment key
 * exists: each one matched is deleted from it, so what is left is orphaned.
 * Call after every loadWorker; it does what loadResource does for each.
 */
export function adoptResources(s: ClusterState, byWorker: Map<string, Set<string>>, assigned: Map<string, Set<string>>): void {
  for (const [worker, names] of byWorker) {
    const w = s.workers.get(worker);
    const present = assigned.get(worker);
    if (w) w.names = names;
    for (const name of names) {
      const e = s.resources.get(name)!;
      // An assignment counts only if its key is there; repair rewrites whatever is missing or stale.
      if (!present?.delete(name)) e.assign = undefined;
      const h = e.handoff;
      if (h) {
        e.handoff = undefined;
        if (e.assign) {
          e.assign = { ...e.assign, hold: true };
          beginHandoff(s, e, h.from, h.reason);
        }
      }
      if (!w && !TERMINAL.has(e.rec.state) && !isShardedRecord(name, e.rec.spec)) s.pending.add(name);
    }
  }
  s.renamed();
}

/**
 * repair makes etcd agree with the state after a load: assignment keys that
 * are missing, stale (old epoch, wrong worker) or orphaned get rewritten or
 * deleted, and resources of workers that died while no leader watched get
 * placed again, by the next batches as far as their budgets go (after
 * every worker lost its lease at once, that is every resource).
 */
export function repair(s: ClusterState, orphanAssignments: Array<{ worker: string; name: string }>): void {
  for (const e of s.resources.values()) {
    // A handoff whose old owner is gone (or is a later incarnation) may go
    // on: the old attempt has stopped, or will have once a revoked owner's
    // fence window has passed.
    const from = e.handoff?.from;
    if (from && s.workers.get(from.worker)?.epoch !== from.epoch) {
      s.fenceWaits.waitForNoted(e.rec.name, from.worker);
      release(s, e.rec.name);
    }
    if (e.rec.worker && !s.workers.has(e.rec.worker)) {
      s.fenceWaits.waitForNoted(e.rec.name, e.rec.worker);
      // A new attempt elsewhere, or pending if nothing fits (placePending).
      s.pending.add(e.rec.name);
      s.toTry = Infinity;
    } else if (!sameAssign(wanted(s, e), e.assign)) s.restamp.add(e.rec.name);
  }
  s.log.orphans.push(...orphanAssignments);
  restoreShards(s);
}

/** restamps rewrites the assignments a load found stale, as far as the batch's budget goes. */
export function restamps(s: ClusterState): void {
  s.backlog(() => s.within(s.restamp, (name) => {
    const e = s.resources.get(name);
    // Moved or deleted since, or its worker is gone (placePending has it then).
    if (!e || (e.rec.worker && !s.workers.has(e.rec.worker))) return;
    const want = wanted(s, e);
    if (sameAssign(want, e.assign)) return;
    s.touch(name);
    e.assign = want;
  }));
}

/** wanted is the assignment key a resource's record calls for, on its worker's current incarnation. */
function wanted(s: ClusterState, e: Entry): Assignment | undefined {
  const w = e.rec.worker ? s.workers.get(e.rec.worker) : undefined;
  return (
    w && {
      worker: w.id,
      epoch: w.epoch,
      attempt: e.rec.attempt,
      ...(e.rec.delayMs ? { delayMs: e.rec.delayMs } : {}),
      ...(e.rec.checkpoint ? { checkpoint: true } : {}),
      ...(e.handoff ? { hold: true } : {}),
    }
  );
}
