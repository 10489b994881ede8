// What a worker is assigned, as it reads it: assign events off
// worker.<id>.assign (JSON) and assignment values out of etcd (msgpack,
// decoded by stored.ts). Anything not shaped like what the leader writes is
// refused rather than trusted.

import { json } from './codec.js';
import { parseKey } from './keys.js';
import { decodeAssignment } from './stored.js';
import type { AssignedTask, AssignEvent } from './messages.js';

/** isAssignEvent checks the shape of an event off the wire before it is trusted. */
export function isAssignEvent(v: unknown): v is AssignEvent {
  if (!v || typeof v !== 'object') return false;
  const e = v as Partial<AssignEvent>;
  const r = e.resource as Partial<AssignedTask> | undefined;
  return (
    (e.type === 'put' || e.type === 'delete') &&
    typeof e.revision === 'number' &&
    typeof e.epoch === 'string' &&
    !!r &&
    typeof r.name === 'string' &&
    typeof r.id === 'string' &&
    typeof r.attempt === 'number' &&
    (r.spec === undefined || (typeof r.spec === 'object' && r.spec !== null))
  );
}

/** decodeAssignEvent reads one message off worker.<id>.assign; undefined if it is not an assign event. */
export function decodeAssignEvent(data: Uint8Array): AssignEvent | undefined {
  let ev: unknown;
  try {
    ev = json.decode(data);
  } catch {
    return undefined;
  }
  return isAssignEvent(ev) ? ev : undefined;
}

/** An etcd key-value as far as reading assignments needs it. */
export interface AssignmentKV {
  key: string;
  value: Uint8Array;
  modRevision: number;
}

/**
 * decodeAssignments reads a worker's assignment values: keys that are not
 * assignment keys are skipped, and malformed values are left out and named,
 * so the caller can log them.
 */
export function decodeAssignments(kvs: readonly AssignmentKV[]): {
  assigned: Array<{ resource: AssignedTask; epoch: string }>;
  malformed: Array<{ key: string; err: string }>;
} {
  const assigned: Array<{ resource: AssignedTask; epoch: string }> = [];
  const malformed: Array<{ key: string; err: string }> = [];
  for (const kv of kvs) {
    if (!parseKey.assignment(kv.key)) continue;
    try {
      assigned.push(decodeAssignment(kv.value, kv.modRevision));
    } catch (err) {
      malformed.push({ key: kv.key, err: (err as Error).message });
    }
  }
  return { assigned, malformed };
}
