// What the leader's cluster state is made of: a resource's entry (its record,
// the assignment key it has in etcd, a handoff in flight), a live worker, a
// cordon. The rules in this directory change them; nothing here encodes them
// (the shell's encode.ts does, from the change log).

import { ResourceState, type MoveReason } from '#protocol/messages.js';
import type { StoredResource } from '#protocol/stored.js';

export interface Assignment {
  worker: string;
  /** The worker incarnation (its lease id) this assignment was written for. */
  epoch: string;
  attempt: number;
  delayMs?: number;
  /**
   * The leader's clock time before which it must not start, when a worker
   * it was taken from may still run it; delayMs is what was left of that
   * wait when the batch was planned. Not stored: a new leader has delayMs.
   */
  notBefore?: number;
  checkpoint?: boolean;
  /** Not to be started until the old owner of its handoff has stopped. */
  hold?: boolean;
}

/** Handoff is a move in progress: the old owner may still run the task, checkpoint it and report it stopped. */
export interface Handoff {
  from: Assignment;
  reason: MoveReason;
  /** How long the old owner gets to say it stopped before it is fenced. */
  deadlineMs?: number;
}

/** Cordon is a worker's cordon as etcd keeps it under keys.cordon. */
export interface Cordon {
  draining: boolean;
  /** For a drain: how many moves it started, for the worker.drained event. */
  moved?: number;
  deadlineMs?: number;
}

export interface Entry {
  rec: StoredResource;
  revision: number;
  /** The assignment key as it is in etcd (or will be, once this batch is written). */
  assign: Assignment | undefined;
  /** The newest checkpoint seq accepted for the current attempt. */
  cpSeq?: number;
  handoff?: Handoff;
  /** A shard's last activity report (memory only: shards report it again to a new leader). */
  activity?: { attempt: number; seq: number; idle: boolean };
  /** A sharded resource's queue probe in flight: the shards' token when it was asked for (shards.ts). */
  probe?: string;
}

export class WorkerEntry {
  /** The resources whose records name this worker. A load takes over the set its read grouped (repair.ts adoptResources). */
  names = new Set<string>();
  cordoned = false;
  draining = false;
  constructor(
    readonly id: string,
    public capacity: number,
    public epoch: string,
    public kinds: ReadonlySet<string>,
    public labels: Readonly<Record<string, string>> = {},
  ) {}
  get assigned(): number {
    return this.names.size;
  }
}

export const sameAssign = (a: Assignment | undefined, b: Assignment | undefined): boolean =>
  a === b ||
  (!!a &&
    !!b &&
    a.worker === b.worker &&
    a.epoch === b.epoch &&
    a.attempt === b.attempt &&
    a.delayMs === b.delayMs &&
    a.checkpoint === b.checkpoint &&
    a.hold === b.hold);

/** Completed and failed resources run nowhere until resource.restart; scheduled ones until their next fire. */
export const TERMINAL: ReadonlySet<string> = new Set([ResourceState.completed, ResourceState.failed, ResourceState.scheduled]);
