// Wire and storage types, and validation of everything that arrives from outside.

import { BadRequestError, type WireError } from './errors.js';
import { packed } from './codec.js';

/** Resource names are subject-safe and key-safe: no spaces, slashes, wildcards or leading dots. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Process ids are single NATS subject tokens. */
export const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export const TaskKind = { noop: 'noop' } as const;
export type TaskKind = (typeof TaskKind)[keyof typeof TaskKind];
const TASK_KINDS = new Set<string>(Object.values(TaskKind));

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Spec = { [k: string]: Json };

const MAX_SPEC_BYTES = 64 * 1024;
const MAX_SPEC_DEPTH = 16;

/** Resource is what clients see: `worker` is null while pending; `revision` is the etcd revision of its last change. */
export interface Resource {
  name: string;
  id: string;
  worker: string | null;
  spec: Spec;
  createdAt: string;
  revision: number;
}

/** StoredResource is the msgpack value under keys.resource and keys.assignment. */
export type StoredResource = Omit<Resource, 'revision'>;

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

/** WorkerInfo is the msgpack value under keys.worker, bound to the worker's lease. */
export interface WorkerInfo {
  id: string;
  capacity: number;
  /** The worker stops its tasks at most this long after its last successful keepalive was sent. */
  fenceMs?: number;
}

function record(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new BadRequestError('request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

function onlyFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k)) throw new BadRequestError(`unknown field "${k}"; expected ${allowed.join(', ') || 'none'}`);
  }
}

export function validateName(name: unknown): string {
  if (name === undefined) throw new BadRequestError('"name" is required');
  if (typeof name !== 'string') throw new BadRequestError('"name" must be a string');
  if (!NAME_RE.test(name)) {
    throw new BadRequestError(`invalid name ${JSON.stringify(name.slice(0, 140))}: must match ${NAME_RE.source}`);
  }
  return name;
}

function depth(v: unknown, level: number): void {
  if (level > MAX_SPEC_DEPTH) throw new BadRequestError(`"spec" nests deeper than ${MAX_SPEC_DEPTH} levels`);
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new BadRequestError('"spec" numbers must be finite');
    return;
  }
  if (Array.isArray(v)) return v.forEach((x) => depth(x, level + 1));
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.values(v as object).forEach((x) => depth(x, level + 1));
  }
  throw new BadRequestError('"spec" may hold only JSON values');
}

export function validateSpec(spec: unknown): Spec {
  if (spec === undefined) return {};
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    throw new BadRequestError('"spec" must be an object');
  }
  depth(spec, 0);
  const kind = (spec as Record<string, unknown>).kind;
  if (kind !== undefined && (typeof kind !== 'string' || !TASK_KINDS.has(kind))) {
    throw new BadRequestError(`unknown spec.kind ${JSON.stringify(kind)}; known kinds: ${[...TASK_KINDS].join(', ')}`);
  }
  if (packed.encode(spec).byteLength > MAX_SPEC_BYTES) {
    throw new BadRequestError(`"spec" is larger than ${MAX_SPEC_BYTES} bytes`);
  }
  return spec as Spec;
}

export function validateAdd(body: unknown): AddRequest {
  const r = record(body);
  onlyFields(r, ['name', 'spec']);
  return { name: validateName(r.name), spec: validateSpec(r.spec) };
}

export function validateNameRequest(body: unknown): NameRequest {
  const r = record(body);
  onlyFields(r, ['name']);
  return { name: validateName(r.name) };
}

export function validateList(body: unknown): ListRequest {
  const r = record(body);
  onlyFields(r, ['after', 'limit']);
  const out: ListRequest = {};
  if (r.after !== undefined) out.after = validateName(r.after);
  if (r.limit !== undefined) {
    if (typeof r.limit !== 'number' || !Number.isInteger(r.limit) || r.limit < 1 || r.limit > LIST_PAGE_MAX) {
      throw new BadRequestError(`"limit" must be a whole number from 1 to ${LIST_PAGE_MAX}`);
    }
    out.limit = r.limit;
  }
  return out;
}

export function validateEmpty(body: unknown): Record<string, never> {
  onlyFields(record(body), []);
  return {};
}

export function validateId(id: unknown, what: string): string {
  if (typeof id !== 'string' || !ID_RE.test(id)) {
    throw new BadRequestError(`invalid ${what} id ${JSON.stringify(id)}: must match ${ID_RE.source}`);
  }
  return id;
}

export function taskKindOf(spec: Spec): TaskKind {
  const kind = spec.kind;
  return typeof kind === 'string' && TASK_KINDS.has(kind) ? (kind as TaskKind) : TaskKind.noop;
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
  if (!v || typeof v.id !== 'string' || typeof v.capacity !== 'number') throw new Error('stored worker is malformed');
  return { id: v.id, capacity: v.capacity, ...(typeof v.fenceMs === 'number' ? { fenceMs: v.fenceMs } : {}) };
}
