// Values gaffer keeps in etcd (msgpack), and reading them back: anything not
// shaped like what we write is refused rather than trusted.

import { packed } from './codec.js';
import { ResourceState, type AssignedTask, type Json, type Resource, type Spec } from './messages.js';
import { decodeSchedule, type StoredSchedule } from './stored-schedule.js';

/**
 * StoredResource is the msgpack value under keys.resource: what clients see,
 * plus the leader's bookkeeping (never shown to clients).
 */
export type StoredResource = Omit<Resource, 'revision'> & {
  /** The current attempt's start delay (a restart's backoff), so a new leader rewrites the same assignment. */
  delayMs?: number;
  /** A checkpoint exists under keys.checkpoint. */
  checkpoint?: boolean;
  /** Workers on which attempts failed since the last success, for rescheduling elsewhere. */
  failedOn?: string[];
  /** A scheduled resource's fires and runs. */
  sched?: StoredSchedule;
};

/** A handoff in progress, kept in the record so a new leader finishes it: the old owner's attempt. */
export interface StoredHandoff {
  worker: string;
  epoch: string;
  attempt: number;
  reason: string;
}

/** StoredAssignment is the msgpack value under keys.assignment: one attempt for one worker incarnation. */
export interface StoredAssignment {
  /** Handed off: the worker must not start it until the leader releases it. */
  hold?: boolean;
  name: string;
  id: string;
  worker: string;
  spec: Spec;
  createdAt: string;
  attempt: number;
  delayMs?: number;
  checkpoint?: boolean;
  /** The worker incarnation (lease id) it is for. */
  epoch: string;
  /** A scheduled resource's run. */
  run?: number;
  /** The leader term that wrote it, for audits. */
  term: number;
}

/** StoredCheckpoint is the msgpack value under keys.checkpoint. */
export interface StoredCheckpoint {
  /** The resource id it belongs to: a re-created name never resumes an old checkpoint. */
  id: string;
  attempt: number;
  seq: number;
  worker: string;
  state: Json;
  at: string;
}

/** WorkerInfo is the msgpack value under keys.worker, bound to the worker's lease. */
export interface WorkerInfo {
  id: string;
  capacity: number;
  /** The worker stops its tasks at most this long after its last successful keepalive was sent. */
  fenceMs: number;
  /** The task kinds it runs. */
  kinds: string[];
  /** Its labels, for constraints and preferences. */
  labels: Record<string, string>;
}

/** Fencing is the msgpack value under keys.fencing: a revoked worker incarnation that may still run its tasks for fenceMs. */
export interface Fencing {
  epoch: string;
  fenceMs: number;
}

export function decodeFencing(value: Uint8Array): Fencing {
  const v = packed.decode(value) as Partial<Fencing> | null;
  if (!v || typeof v.epoch !== 'string' || typeof v.fenceMs !== 'number' || !(v.fenceMs >= 0)) throw new Error('stored fencing is malformed');
  return { epoch: v.epoch, fenceMs: v.fenceMs };
}

const STATES = new Set<string>(Object.values(ResourceState));

/** toResource is what clients see of a record: without the leader's bookkeeping. */
export function toResource(rec: StoredResource, revision: number): Resource {
  const { delayMs: _d, checkpoint: _c, failedOn: _f, sched: _s, ...shown } = rec;
  return { ...shown, revision };
}

/** decodeStored reads a resource record from etcd, refusing anything not shaped like one. */
export function decodeStored(value: Uint8Array): StoredResource {
  return decodeRecord(value).rec;
}

const num = (v: unknown, dflt: number): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : dflt);

/**
 * decodeRecord also returns the record's bookkeeping: `epoch`, the worker
 * incarnation its assignment was written for, so a new leader need not read
 * every assignment value back. A record written before the task runtime has
 * no state: it is starting where it is placed and pending where not.
 */
export function decodeRecord(value: Uint8Array): { rec: StoredResource; epoch?: string; handoff?: StoredHandoff } {
  const v = packed.decode(value) as (Partial<StoredResource> & { epoch?: unknown; handoff?: Partial<StoredHandoff> }) | null;
  if (!v || typeof v.name !== 'string' || typeof v.id !== 'string' || typeof v.createdAt !== 'string') {
    throw new Error('stored resource is malformed');
  }
  const worker = typeof v.worker === 'string' ? v.worker : null;
  const rec: StoredResource = {
    name: v.name,
    id: v.id,
    worker,
    spec: v.spec && typeof v.spec === 'object' ? v.spec : {},
    createdAt: v.createdAt,
    state: typeof v.state === 'string' && STATES.has(v.state) ? v.state : worker ? ResourceState.starting : ResourceState.pending,
    attempt: num(v.attempt, 0),
    failures: num(v.failures, 0),
  };
  if (v.progress !== undefined) rec.progress = v.progress;
  if (typeof v.error === 'string') rec.error = v.error;
  if (v.result !== undefined) rec.result = v.result;
  if (typeof v.reason === 'string') rec.reason = v.reason;
  if (typeof v.delayMs === 'number' && v.delayMs > 0) rec.delayMs = v.delayMs;
  if (v.checkpoint === true) rec.checkpoint = true;
  const sched = decodeSchedule(v.sched);
  if (sched) rec.sched = sched;
  if (Array.isArray(v.failedOn)) rec.failedOn = v.failedOn.filter((w): w is string => typeof w === 'string');
  const h = v.handoff;
  const handoff =
    h && typeof h.worker === 'string' && typeof h.epoch === 'string' && typeof h.attempt === 'number'
      ? { worker: h.worker, epoch: h.epoch, attempt: h.attempt, reason: String(h.reason ?? 'rebalance') }
      : undefined;
  return { rec, ...(typeof v.epoch === 'string' ? { epoch: v.epoch } : {}), ...(handoff ? { handoff } : {}) };
}

export function decodeWorkerInfo(value: Uint8Array): WorkerInfo {
  const v = packed.decode(value) as Partial<WorkerInfo> | null;
  if (!v || typeof v.id !== 'string' || typeof v.capacity !== 'number' || typeof v.fenceMs !== 'number' || !Array.isArray(v.kinds)) {
    throw new Error('stored worker is malformed');
  }
  const labels: Record<string, string> = {};
  if (v.labels && typeof v.labels === 'object' && !Array.isArray(v.labels)) {
    for (const [k, x] of Object.entries(v.labels)) if (typeof x === 'string') labels[k] = x;
  }
  return { id: v.id, capacity: v.capacity, fenceMs: v.fenceMs, kinds: v.kinds.filter((k): k is string => typeof k === 'string'), labels };
}

/** decodeAssignment reads an assignment value: the task as the worker runs it, and the incarnation it is for. */
export function decodeAssignment(value: Uint8Array, revision: number): { resource: AssignedTask; epoch: string } {
  const v = packed.decode(value) as Partial<StoredAssignment> | null;
  if (!v || typeof v.name !== 'string' || typeof v.id !== 'string' || typeof v.epoch !== 'string' || typeof v.attempt !== 'number') {
    throw new Error('stored assignment is malformed');
  }
  const resource: AssignedTask = {
    name: v.name,
    id: v.id,
    worker: typeof v.worker === 'string' ? v.worker : null,
    spec: v.spec && typeof v.spec === 'object' ? v.spec : {},
    createdAt: typeof v.createdAt === 'string' ? v.createdAt : '',
    revision,
    attempt: v.attempt,
    ...(typeof v.delayMs === 'number' && v.delayMs > 0 ? { delayMs: v.delayMs } : {}),
    ...(v.checkpoint === true ? { checkpoint: true } : {}),
    ...(v.hold === true ? { hold: true } : {}),
    ...(typeof v.run === 'number' && Number.isSafeInteger(v.run) && v.run > 0 ? { run: v.run } : {}),
  };
  return { resource, epoch: v.epoch };
}

export function decodeCheckpoint(value: Uint8Array): StoredCheckpoint {
  const v = packed.decode(value) as Partial<StoredCheckpoint> | null;
  if (!v || typeof v.id !== 'string' || typeof v.attempt !== 'number' || typeof v.seq !== 'number' || !('state' in v)) {
    throw new Error('stored checkpoint is malformed');
  }
  return { id: v.id, attempt: v.attempt, seq: v.seq, worker: String(v.worker ?? ''), state: v.state as Json, at: String(v.at ?? '') };
}

/** StoredCordon is the msgpack value under keys.cordon. */
export interface StoredCordon {
  draining: boolean;
  /** For a drain: how many moves it started, for the worker.drained event. */
  moved?: number;
  deadlineMs?: number;
}

/** decodeCordon reads a cordon back as a new leader needs it: a drain's mark and count (its deadline was for the handoffs of the leader that started it). */
export function decodeCordon(value: Uint8Array): StoredCordon {
  const c = packed.decode(value) as Partial<StoredCordon> | null;
  return { draining: c?.draining === true, ...(typeof c?.moved === 'number' ? { moved: c.moved } : {}) };
}
