// Sharded resources on the wire: `spec.shards: N` makes one resource run as
// N shards. Each shard is an entry of its own (its own record, assignment
// and checkpoint keys, attempt and lifecycle) named `<name>/<index>`: a
// slash is never in a resource name (NAME_RE), so a shard's name cannot
// collide with a resource's, and every rule that places, moves, fences and
// restarts a resource does the same to a shard without knowing it is one.
// The resource's own record keeps the spec and the state of the whole.

import { BadRequestError } from './errors.js';
import { NAME_RE, type Json, type ResourceState, type Spec } from './messages.js';

export const MAX_SHARDS = 256;

/** ShardView is one shard as resource.get shows it. */
export interface ShardView {
  index: number;
  worker: string | null;
  state: ResourceState;
  attempt: number;
  progress?: Json;
  /** The shard's runtime says it is out of work (it awaits its inbox holding nothing). */
  idle?: boolean;
  error?: string;
}

/** shardCount is how many shards a (validated) spec asks for; undefined for an unsharded resource. */
export function shardCount(spec: Spec): number | undefined {
  return typeof spec.shards === 'number' ? spec.shards : undefined;
}

/** validateShards checks spec.shards: a whole number from 1 to MAX_SHARDS. */
export function validateShards(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_SHARDS) {
    throw new BadRequestError(`"spec.shards" must be a whole number from 1 to ${MAX_SHARDS}`);
  }
  return v;
}

export const shardName = (name: string, index: number): string => `${name}/${index}`;

/** shardId is a shard's id, from its resource's: re-creating the resource gives every shard a new one. */
export const shardId = (resourceId: string, index: number): string => `${resourceId}_s${index}`;

const SHARD_NAME_RE = /^(.+)\/(\d{1,3})$/;
const SHARD_ID_RE = /^(.+)_s(\d{1,3})$/;

/** parseShard reads a shard's name and id back into its resource's and its index; undefined for anything else. */
export function parseShard(name: string, id?: string): { name: string; index: number; id?: string } | undefined {
  const m = SHARD_NAME_RE.exec(name);
  if (!m || !NAME_RE.test(m[1]!)) return undefined;
  const index = Number(m[2]);
  if (index >= MAX_SHARDS) return undefined;
  if (id === undefined) return { name: m[1]!, index };
  const i = SHARD_ID_RE.exec(id);
  if (!i || Number(i[2]) !== index) return undefined;
  return { name: m[1]!, index, id: i[1]! };
}

/** isShardName: a shard entry's name, not a resource's. */
export const isShardName = (name: string): boolean => parseShard(name) !== undefined;

/** isShardedRecord: a sharded resource's own record (it runs nowhere itself; its shards do). */
export const isShardedRecord = (name: string, spec: Spec): boolean => shardCount(spec) !== undefined && !isShardName(name);

/**
 * combineProgress is a sharded resource's progress from its shards': the
 * sum of each numeric field when every shard's progress is an object (or
 * none yet), else undefined.
 */
export function combineProgress(values: ReadonlyArray<Json | undefined>): Json | undefined {
  const out: { [k: string]: Json } = {};
  let any = false;
  for (const v of values) {
    if (v === undefined || v === null) continue;
    if (typeof v !== 'object' || Array.isArray(v)) return undefined;
    for (const [k, x] of Object.entries(v)) {
      if (typeof x !== 'number') continue;
      out[k] = ((out[k] as number | undefined) ?? 0) + x;
      any = true;
    }
  }
  return any ? out : undefined;
}
