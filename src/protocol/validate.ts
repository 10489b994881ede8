// Validation of everything that arrives from outside: client request bodies,
// names, ids and specs. Anything malformed is a BadRequestError.

import { BadRequestError } from './errors.js';
import { packed } from './codec.js';
import {
  ID_RE, LIST_PAGE_MAX, MAX_SPEC_BYTES, MAX_SPEC_DEPTH, NAME_RE, TASK_KINDS, TaskKind,
  type AddRequest, type ListRequest, type NameRequest, type Spec,
} from './messages.js';

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
