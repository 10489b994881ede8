// Validation of everything that arrives from outside: client request bodies,
// names, ids and specs. Anything malformed is a BadRequestError.

import { BadRequestError } from './errors.js';
import { validateShards } from './shards.js';
import { packed } from './codec.js';
import { validateSchedule } from './schedule.js';
import { validateLabels } from './labels.js';
import { LIST_FILTER_FIELDS, validateListFilter } from './list-query.js';
import {
  DEFAULT_KIND, DEFAULT_RESTART, ID_RE, KIND_RE, LABEL_RE, LIST_PAGE_MAX, MAX_SPEC_BYTES, MAX_SPEC_DEPTH, NAME_RE, type Constraint,
  type AddRequest, type DrainRequest, type ListRequest, type NameRequest, type RestartPolicy, type Spec, type WorkerRequest,
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
  const s = spec as Record<string, unknown>;
  if (s.kind !== undefined && (typeof s.kind !== 'string' || !KIND_RE.test(s.kind))) {
    throw new BadRequestError(`invalid spec.kind ${JSON.stringify(s.kind)}: must match ${KIND_RE.source}`);
  }
  if (s.restart !== undefined) validateRestart(s.restart);
  if (s.constraints !== undefined) validateConstraints(s.constraints, 'spec.constraints');
  if (s.prefer !== undefined) validateConstraints(s.prefer, 'spec.prefer');
  if (s.schedule !== undefined) validateSchedule(s.schedule);
  if (s.rebalance !== undefined && typeof s.rebalance !== 'boolean') throw new BadRequestError('"spec.rebalance" must be true or false');
  if (s.shards !== undefined) validateShards(s.shards);
  // A scheduled run of a sharded resource would need its runs to start and end every shard: not built.
  if (s.shards !== undefined && s.schedule !== undefined) throw new BadRequestError('"spec.shards" and "spec.schedule" cannot be combined');
  if (s.labels !== undefined) validateLabels(s.labels, 'spec.labels');
  if (packed.encode(spec).byteLength > MAX_SPEC_BYTES) {
    throw new BadRequestError(`"spec" is larger than ${MAX_SPEC_BYTES} bytes`);
  }
  return spec as Spec;
}

export function validateAdd(body: unknown): AddRequest {
  const r = record(body);
  onlyFields(r, ['name', 'spec', 'dryRun']);
  if (r.dryRun !== undefined && typeof r.dryRun !== 'boolean') throw new BadRequestError('"dryRun" must be true or false');
  const out: AddRequest = { name: validateName(r.name), spec: validateSpec(r.spec) };
  if (r.dryRun === true) out.dryRun = true;
  return out;
}

export function validateWorkerRequest(body: unknown): WorkerRequest {
  const r = record(body);
  onlyFields(r, ['worker']);
  return { worker: validateId(r.worker, 'worker') };
}

/** The longest a drain may wait for one old worker to confirm a stop. */
export const MAX_DRAIN_DEADLINE_MS = 3_600_000;

export function validateDrain(body: unknown): DrainRequest {
  const r = record(body);
  onlyFields(r, ['worker', 'deadlineMs']);
  const out: DrainRequest = { worker: validateId(r.worker, 'worker') };
  if (r.deadlineMs !== undefined) {
    const d = r.deadlineMs;
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > MAX_DRAIN_DEADLINE_MS) {
      throw new BadRequestError(`"deadlineMs" must be a whole number from 1 to ${MAX_DRAIN_DEADLINE_MS}`);
    }
    out.deadlineMs = d;
  }
  return out;
}

export function validateNameRequest(body: unknown): NameRequest {
  const r = record(body);
  onlyFields(r, ['name']);
  return { name: validateName(r.name) };
}

export function validateList(body: unknown): ListRequest {
  const r = record(body);
  onlyFields(r, ['after', 'limit', ...LIST_FILTER_FIELDS]);
  const out: ListRequest = validateListFilter(r);
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

/** taskKindOf is the kind a (validated) spec names, or the default. */
export function taskKindOf(spec: Spec): string {
  return typeof spec.kind === 'string' ? spec.kind : DEFAULT_KIND;
}

const LIMITS: Record<keyof Omit<RestartPolicy, 'reschedule'>, [number, number]> = {
  attempts: [1, 1000],
  delayMs: [0, 3_600_000],
  maxDelayMs: [0, 86_400_000],
};

function validateRestart(v: unknown): RestartPolicy {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new BadRequestError('"spec.restart" must be an object');
  const r = v as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!(k in DEFAULT_RESTART)) throw new BadRequestError(`unknown field "spec.restart.${k}"; expected ${Object.keys(DEFAULT_RESTART).join(', ')}`);
  }
  for (const [k, [lo, hi]] of Object.entries(LIMITS)) {
    const x = r[k];
    if (x !== undefined && (typeof x !== 'number' || !Number.isInteger(x) || x < lo || x > hi)) {
      throw new BadRequestError(`"spec.restart.${k}" must be a whole number from ${lo} to ${hi}`);
    }
  }
  if (r.reschedule !== undefined && typeof r.reschedule !== 'boolean') throw new BadRequestError('"spec.restart.reschedule" must be true or false');
  const p = restartPolicyOf({ restart: r as Spec });
  if (p.maxDelayMs < p.delayMs) throw new BadRequestError('"spec.restart.maxDelayMs" must be at least delayMs');
  return p;
}

const OPS: ReadonlySet<string> = new Set(['in', 'notIn', 'exists', 'notExists']);
const MAX_RULES = 32;

/** validateConstraints checks a list of label rules: { key, op, values } with values for in and notIn only. */
function validateConstraints(v: unknown, what: string): Constraint[] {
  if (!Array.isArray(v) || v.length > MAX_RULES) throw new BadRequestError(`"${what}" must be a list of at most ${MAX_RULES} rules`);
  return v.map((c, i) => {
    const at = `"${what}[${i}]"`;
    if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new BadRequestError(`${at} must be an object`);
    const r = c as Record<string, unknown>;
    for (const k of Object.keys(r)) if (!['key', 'op', 'values'].includes(k)) throw new BadRequestError(`${at}: unknown field "${k}"; expected key, op, values`);
    if (typeof r.key !== 'string' || !LABEL_RE.test(r.key)) throw new BadRequestError(`${at}.key must match ${LABEL_RE.source}`);
    if (typeof r.op !== 'string' || !OPS.has(r.op)) throw new BadRequestError(`${at}.op must be one of ${[...OPS].join(', ')}`);
    const needs = r.op === 'in' || r.op === 'notIn';
    if (needs) {
      if (!Array.isArray(r.values) || r.values.length === 0 || !r.values.every((x) => typeof x === 'string' && LABEL_RE.test(x))) {
        throw new BadRequestError(`${at}.values must be a non-empty list of label values for ${r.op}`);
      }
    } else if (r.values !== undefined) throw new BadRequestError(`${at}.values has no meaning for ${r.op}`);
    return { key: r.key, op: r.op as Constraint['op'], ...(needs ? { values: r.values as string[] } : {}) };
  });
}

/** restartPolicyOf reads a (validated) spec's restart policy, defaults filled in. */
export function restartPolicyOf(spec: Spec): RestartPolicy {
  const r = (spec.restart ?? {}) as Partial<RestartPolicy>;
  return {
    attempts: r.attempts ?? DEFAULT_RESTART.attempts,
    delayMs: r.delayMs ?? DEFAULT_RESTART.delayMs,
    maxDelayMs: r.maxDelayMs ?? Math.max(DEFAULT_RESTART.maxDelayMs, r.delayMs ?? 0),
    reschedule: r.reschedule ?? DEFAULT_RESTART.reschedule,
  };
}
