// Wire types: what clients, masters and workers send each other, and the
// limits on them. Validation is in validate.ts, stored values in stored.ts.

import type { WireError } from './errors.js';

/** Resource names are subject-safe and key-safe: no spaces, slashes, wildcards or leading dots. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Process ids are single NATS subject tokens. */
export const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export const TaskKind = { noop: 'noop' } as const;
export type TaskKind = (typeof TaskKind)[keyof typeof TaskKind];
export const TASK_KINDS: ReadonlySet<string> = new Set<string>(Object.values(TaskKind));

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Spec = { [k: string]: Json };

export const MAX_SPEC_BYTES = 64 * 1024;
export const MAX_SPEC_DEPTH = 16;

/** Resource is what clients see: `worker` is null while pending; `revision` is the etcd revision of its last change. */
export interface Resource {
  name: string;
  id: string;
  worker: string | null;
  spec: Spec;
  createdAt: string;
  revision: number;
}


export interface AddRequest {
  name: string;
  spec: Spec;
}
export interface NameRequest {
  name: string;
}

export type OkReply<T> = { ok: true } & T;
export interface ErrorReply {
  ok: false;
  error: WireError;
}
export type Reply<T> = OkReply<T> | ErrorReply;

export interface AddResult {
  created: boolean;
  resource: Resource;
}
export interface ResourceResult {
  resource: Resource;
}
export interface ListResult {
  resources: Resource[];
  /** Present when more remain: pass it as `after` to get the next page. */
  next?: string;
}
export interface ListRequest {
  /** Names after this one (exclusive), in name order. */
  after?: string;
  /** At most this many (default and most: LIST_PAGE_MAX). A page also stops near LIST_PAGE_BYTES. */
  limit?: number;
}

export const LIST_PAGE_MAX = 5000;
/** Replies stay well under NATS's default max_payload (1 MiB). */
export const LIST_PAGE_BYTES = 512 * 1024;
export interface WorkerLoad {
  id: string;
  capacity: number;
  resources: number;
}
export interface StatusResult {
  leader: string;
  masters: string[];
  workers: WorkerLoad[];
  /** Resources waiting for a worker with room. */
  pending: number;
}

/** AssignEvent is published on worker.<id>.assign, mirroring the etcd watch of that worker's assignments. */
export interface AssignEvent {
  type: 'put' | 'delete';
  resource: Resource;
  revision: number;
  /** The worker incarnation (its lease id) the assignment was written for; only that incarnation runs it. */
  epoch: string;
}
export interface WorkerStatusResult {
  id: string;
  running: string[];
  /** The same tasks with the resource id each runs, so a caller can tell a re-created resource apart. */
  tasks: Array<{ name: string; id: string; since: string }>;
}

/** AckMessage goes from the leader to a forwarding master once per batch: these requests were answered. */
export interface AckMessage {
  ids: string[];
  /** The subset answered with an error, for the forwarding master's endpoint stats. */
  errors: string[];
}
