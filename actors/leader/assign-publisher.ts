// The assignment publisher tells each worker, on worker.<id>.assign, every
// change a commit made to its assignment keys. The changes are taken from
// what the leader planned and committed (encode.ts builds them beside the
// etcd ops), not read back from an etcd watch: a watch would decode every
// value the leader has just encoded, and deliver it on a stream of its own,
// after the reply. Commits resolve in order, so events leave in revision
// order; workers apply only what is newer than what they know
// (actors/worker/assignments.ts), so a repeat is harmless. A change whose
// commit outcome is unknown is published again from the reloaded state
// (unsure-assigns.ts), and a new leader's election makes every worker re-read
// its snapshot.

import { json } from '#protocol/codec.js';
import { subjects } from '#protocol/subjects.js';
import type { AssignedTask, AssignEvent } from '#protocol/messages.js';
import type { Bus } from '#platform/ports.js';

/** AssignChange is one planned change to an assignment key, waiting for its commit's revision. */
export interface AssignChange {
  type: 'put' | 'delete';
  /** The worker whose key it is (its subject). */
  worker: string;
  /** For a delete, the attempt that was removed; its spec is not sent again. */
  task: Omit<AssignedTask, 'revision'>;
  epoch: string;
  /**
   * The leader's clock time (clock.now()) before which the task must not
   * start, when its previous owner may still run it. The key's delayMs counts
   * from when the batch was planned; the worker counts from when it hears, so
   * the event says only what is left of the wait as it leaves.
   */
  notBefore?: number;
}

/** publishAssigns sends each change, stamped with the revision its transaction committed at; `now` is the leader's clock. */
export function publishAssigns(bus: Bus, changes: readonly AssignChange[], revision: number, now: number): void {
  for (const c of changes) {
    const ev: AssignEvent = { type: c.type, resource: { ...waitLeft(c, now), revision }, revision, epoch: c.epoch };
    bus.publish(subjects.workerAssign(c.worker), json.encode(ev));
  }
}

function waitLeft(c: AssignChange, now: number): AssignChange['task'] {
  if (c.notBefore === undefined) return c.task;
  const { delayMs: _d, ...task } = c.task;
  // Rounded up: the worker must not start a millisecond early.
  const left = Math.ceil(c.notBefore - now);
  return left > 0 ? { ...task, delayMs: left } : task;
}

/** removed is the delete of a worker's assignment of `name`, when the task it held is not known. */
export function removed(worker: string, name: string, id = '', attempt = 0, epoch = ''): AssignChange {
  return { type: 'delete', worker, task: { name, id, worker, spec: {}, createdAt: '', attempt }, epoch };
}
