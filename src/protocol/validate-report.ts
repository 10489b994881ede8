// Validation of what workers send the leader on task.report. Workers are
// ours, but the subject is reachable by anyone allowed to publish there and a
// worker runs untrusted task code, so every field is checked like client input.

import { BadRequestError } from './errors.js';
import { MAX_REPORTS, MAX_STATE_BYTES, type Json, type ReportRequest, type TaskReport, type TaskReportType } from './messages.js';
import { validateId, validateName } from './validate.js';
import { parseShard } from './shards.js';

const TYPES: ReadonlySet<TaskReportType> = new Set(['started', 'progress', 'checkpoint', 'completed', 'failed', 'stopped', 'activity']);
const MAX_ERROR_CHARS = 2000;
const ID_MAX = 64;

function obj(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new BadRequestError(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function wholeNumber(v: unknown, what: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new BadRequestError(`${what} must be a whole number ≥ ${min}`);
  return v;
}

/**
 * The deepest a task-supplied value may nest, as the worker already checks
 * (actors/worker/runtime/context.ts): the leader stores it in msgpack, whose
 * encoder refuses more than 100 levels, and a value it cannot write would
 * fail every batch that touches its resource.
 */
const MAX_DEPTH = 64;

function tooDeep(v: unknown): boolean {
  const stack: Array<[unknown, number]> = [[v, 0]];
  while (stack.length > 0) {
    const [x, depth] = stack.pop()!;
    if (x === null || typeof x !== 'object') continue;
    if (depth >= MAX_DEPTH) return true;
    for (const y of Object.values(x)) stack.push([y, depth + 1]);
  }
  return false;
}

/** json checks a task-supplied value is JSON of at most MAX_STATE_BYTES, nested at most MAX_DEPTH deep. */
export function boundedJson(v: unknown, what: string): Json {
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch {
    throw new BadRequestError(`${what} is not JSON`);
  }
  if (text === undefined) throw new BadRequestError(`${what} is not JSON`);
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_STATE_BYTES) throw new BadRequestError(`${what} is ${bytes} bytes; the limit is ${MAX_STATE_BYTES}`);
  if (tooDeep(v)) throw new BadRequestError(`${what} nests deeper than ${MAX_DEPTH} levels`);
  return v as Json;
}

/** errorText is a failure's error as text; a value String() cannot convert (e.g. {"toString":1}) is refused. */
function errorText(v: unknown, i: number): string {
  try {
    return String(v ?? 'unknown error').slice(0, MAX_ERROR_CHARS);
  } catch {
    throw new BadRequestError(`reports[${i}].error must be a string`);
  }
}

function report(v: unknown, i: number): TaskReport {
  const r = obj(v, `reports[${i}]`);
  const type = r.type as TaskReportType;
  if (!TYPES.has(type)) throw new BadRequestError(`reports[${i}].type must be one of ${[...TYPES].join(', ')}`);
  // A shard reports on its own name, `<resource>/<index>` (shards.ts).
  const name = typeof r.name === 'string' && parseShard(r.name) ? r.name : validateName(r.name);
  if (typeof r.id !== 'string' || r.id.length === 0 || r.id.length > ID_MAX) throw new BadRequestError(`reports[${i}].id must be a resource id`);
  const base = { name, id: r.id, attempt: wholeNumber(r.attempt, `reports[${i}].attempt`, 1) };
  switch (type) {
    case 'started':
    case 'stopped':
      return { type, ...base };
    case 'progress':
      return { type, ...base, progress: boundedJson(r.progress ?? null, `reports[${i}].progress`) };
    case 'checkpoint':
      return { type, ...base, seq: wholeNumber(r.seq, `reports[${i}].seq`, 1), state: boundedJson(r.state ?? null, `reports[${i}].state`) };
    case 'completed':
      return r.result === undefined ? { type, ...base } : { type, ...base, result: boundedJson(r.result, `reports[${i}].result`) };
    case 'failed':
      return { type, ...base, error: errorText(r.error, i) };
    case 'activity':
      if (typeof r.idle !== 'boolean') throw new BadRequestError(`reports[${i}].idle must be true or false`);
      return { type, ...base, seq: wholeNumber(r.seq, `reports[${i}].seq`, 1), idle: r.idle };
  }
}

export function validateReportRequest(body: unknown): ReportRequest {
  const r = obj(body, 'request body');
  for (const k of Object.keys(r)) if (!['worker', 'epoch', 'reports'].includes(k)) throw new BadRequestError(`unknown field "${k}"`);
  const worker = validateId(r.worker, 'worker');
  if (typeof r.epoch !== 'string' || !/^[0-9]{1,20}$/.test(r.epoch)) throw new BadRequestError('"epoch" must be a lease id');
  if (!Array.isArray(r.reports) || r.reports.length === 0 || r.reports.length > MAX_REPORTS) {
    throw new BadRequestError(`"reports" must be a list of 1 to ${MAX_REPORTS} reports`);
  }
  return { worker, epoch: r.epoch, reports: r.reports.map(report) };
}
