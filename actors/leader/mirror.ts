// The assign mirror tells each worker, on worker.<id>.assign, every change a
// commit made to its assignment keys. The changes are taken from what the
// leader planned and committed (flush builds them beside the etcd ops), not
// read back from an etcd watch: a watch would decode every value the leader
// has just encoded, and deliver it on a stream of its own, after the reply.
// Commits resolve in order, so events leave in revision order; workers apply
// only what is newer than what they know (actors/worker/assignments.ts), so a
// repeat is harmless. A change whose commit outcome is unknown is published
// again from the reloaded state (`truth`), and a new leader's election makes
// every worker re-read its snapshot.

import { json } from '../../src/protocol/codec.js';
import { subjects } from '../../src/protocol/subjects.js';
import type { AssignedTask, AssignEvent } from '../../src/protocol/messages.js';
import type { Bus } from '../../src/platform/ports.js';

/** AssignChange is one planned change to an assignment key, waiting for its commit's revision. */
export interface AssignChange {
  type: 'put' | 'delete';
  /** The worker whose key it is (its subject). */
  worker: string;
  /** For a delete, the attempt that was removed; its spec is not sent again. */
  task: Omit<AssignedTask, 'revision'>;
  epoch: string;
}

/** publishAssigns sends each change, stamped with the revision its transaction committed at. */
export function publishAssigns(bus: Bus, changes: readonly AssignChange[], revision: number): void {
  for (const c of changes) {
    const ev: AssignEvent = { type: c.type, resource: { ...c.task, revision }, revision, epoch: c.epoch };
    bus.publish(subjects.workerAssign(c.worker), json.encode(ev));
  }
}

/** removed is the delete of a worker's assignment of `name`, when the task it held is not known. */
export function removed(worker: string, name: string, id = '', attempt = 0, epoch = ''): AssignChange {
  return { type: 'delete', worker, task: { name, id, worker, spec: {}, createdAt: '', attempt }, epoch };
}
