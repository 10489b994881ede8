// Values gaffer keeps in etcd (msgpack), and reading them back: anything not
// shaped like what we write is refused rather than trusted.

import { packed } from './codec.js';
import type { Resource } from './messages.js';

/** StoredResource is the msgpack value under keys.resource (with the epoch of its assignment). */
export type StoredResource = Omit<Resource, 'revision'>;

/** StoredAssignment is the msgpack value under keys.assignment: the record plus the incarnation and term that wrote it. */
export type StoredAssignment = StoredResource & { epoch: string; term: number };

/** WorkerInfo is the msgpack value under keys.worker, bound to the worker's lease. */
export interface WorkerInfo {
  id: string;
  capacity: number;
  /** The worker stops its tasks at most this long after its last successful keepalive was sent. */
  fenceMs: number;
}

/** decodeStored reads a resource record from etcd, refusing anything not shaped like one. */
export function decodeStored(value: Uint8Array): StoredResource {
  return decodeRecord(value).rec;
}

/**
 * decodeRecord also returns the record's bookkeeping: `epoch`, the worker
 * incarnation its assignment was written for, so a new leader need not read
 * every assignment value back.
 */
export function decodeRecord(value: Uint8Array): { rec: StoredResource; epoch?: string } {
  const v = packed.decode(value) as (Partial<StoredResource> & { epoch?: unknown }) | null;
  if (!v || typeof v.name !== 'string' || typeof v.id !== 'string' || typeof v.createdAt !== 'string') {
    throw new Error('stored resource is malformed');
  }
  const rec = { name: v.name, id: v.id, worker: v.worker ?? null, spec: v.spec ?? {}, createdAt: v.createdAt };
  return typeof v.epoch === 'string' ? { rec, epoch: v.epoch } : { rec };
}

export function decodeWorkerInfo(value: Uint8Array): WorkerInfo {
  const v = packed.decode(value) as Partial<WorkerInfo> | null;
  if (!v || typeof v.id !== 'string' || typeof v.capacity !== 'number' || typeof v.fenceMs !== 'number') {
    throw new Error('stored worker is malformed');
  }
  return { id: v.id, capacity: v.capacity, fenceMs: v.fenceMs };
}

/** decodeAssignment reads an assignment value: the resource as the worker sees it, and the incarnation it is for. */
export function decodeAssignment(value: Uint8Array, revision: number): { resource: Resource; epoch: string } {
  const v = packed.decode(value) as Partial<StoredAssignment> | null;
  if (!v || typeof v.epoch !== 'string') throw new Error('stored assignment is malformed');
  const { rec } = decodeRecord(value);
  return { resource: { ...rec, revision }, epoch: v.epoch };
}
