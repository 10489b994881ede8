// resource.apply: many resources in one declarative request. Each item is
// validated on its own, so one bad item is answered with its own error and
// the rest are applied; only a body that is not an apply at all (not an
// object, no list, too many items, a bad prune selector) is refused whole.

import { BadRequestError, ErrorCode, GafferError, type WireError } from './errors.js';
import { NAME_RE, type Spec } from './messages.js';
import { validateLabels } from './labels.js';
import { validateName, validateSpec } from './validate.js';

/** Most items in one apply. */
export const MAX_APPLY_ITEMS = 1000;
/**
 * Largest apply body. NATS refuses a message over its max_payload (1 MiB in
 * our configs) with headers included, so clients split files a little below
 * this (APPLY_SPLIT_BYTES).
 */
export const MAX_APPLY_BYTES = 1024 * 1024;
/** Where a client splits a big file into requests: room for headers and a forwarding hop under NATS's 1 MiB. */
export const APPLY_SPLIT_BYTES = 960 * 1024;
/** Most resources one apply prunes; the reply says `prunedMore` when more match, and the next apply prunes on. */
export const MAX_PRUNE = 1000;

/** PruneSelector names the set an apply owns: what matches it and is not named in the apply is deleted. */
export type PruneSelector = { prefix: string } | { selector: Record<string, string> };

export interface ApplyItem {
  name: string;
  spec: Spec;
}

/** An item refused by validation: answered with its error, never applied. */
export interface RefusedItem {
  name: string;
  error: WireError;
}

export interface ApplyRequest {
  resources: Array<ApplyItem | RefusedItem>;
  prune?: PruneSelector;
  /** Say what would change, and change nothing. */
  dryRun?: boolean;
}

/** What an apply did to one item. */
export const ApplyOutcome = {
  created: 'created',
  unchanged: 'unchanged',
  /** The spec changed: the resource takes it (see docs/scale.md, "apply"). */
  updated: 'updated',
} as const;
export type ApplyOutcome = (typeof ApplyOutcome)[keyof typeof ApplyOutcome];

export type ApplyItemResult = { name: string; id: string; outcome: ApplyOutcome } | RefusedItem;

export interface ApplyResult {
  dryRun?: true;
  /** One per item, in request order. */
  results: ApplyItemResult[];
  /** Deleted by prune (or, with dryRun, what would be). */
  pruned: string[];
  /** More resources match the prune selector than one apply deletes (MAX_PRUNE): apply again. */
  prunedMore?: true;
}

export const isRefused = (i: ApplyItem | RefusedItem): i is RefusedItem => 'error' in i;

/** A refused item's message is cut to this: a thousand of them are recorded whole for re-sent copies, within etcd's request limit. */
const MAX_REFUSAL_CHARS = 200;

function refusal(err: unknown): WireError {
  const e = err instanceof GafferError ? err.toWire() : { code: ErrorCode.BAD_REQUEST, message: String(err) };
  return e.message.length > MAX_REFUSAL_CHARS ? { ...e, message: `${e.message.slice(0, MAX_REFUSAL_CHARS - 1)}…` } : e;
}

/** validateItem checks one item; a bad one becomes a RefusedItem, named as well as it can be. */
function validateItem(v: unknown, i: number, seen: Set<string>): ApplyItem | RefusedItem {
  const raw = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  const label = typeof raw?.name === 'string' ? raw.name.slice(0, 140) : `#${i}`;
  try {
    if (!raw) throw new BadRequestError(`resources[${i}] must be an object`);
    for (const k of Object.keys(raw)) {
      if (k !== 'name' && k !== 'spec') throw new BadRequestError(`resources[${i}]: unknown field "${k}"; expected name, spec`);
    }
    const name = validateName(raw.name);
    if (seen.has(name)) throw new BadRequestError(`${name} is named more than once in this apply`);
    seen.add(name);
    return { name, spec: validateSpec(raw.spec) };
  } catch (err) {
    return { name: label, error: refusal(err) };
  }
}

function validatePrune(v: unknown): PruneSelector {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new BadRequestError('"prune" must be { prefix } or { selector }');
  const p = v as Record<string, unknown>;
  const keys = Object.keys(p);
  if (keys.length !== 1) throw new BadRequestError('"prune" takes exactly one of prefix, selector');
  if (keys[0] === 'prefix') {
    // A prefix is a name's start: the same characters, and not empty (an empty one would prune everything not named).
    if (typeof p.prefix !== 'string' || !NAME_RE.test(p.prefix)) throw new BadRequestError(`"prune.prefix" must match ${NAME_RE.source}`);
    return { prefix: p.prefix };
  }
  if (keys[0] === 'selector') return { selector: validateLabels(p.selector, 'prune.selector', true) };
  throw new BadRequestError(`unknown field "prune.${keys[0]}"; expected prefix, selector`);
}

export function validateApply(body: unknown): ApplyRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequestError('request body must be a JSON object');
  const r = body as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (k !== 'resources' && k !== 'prune' && k !== 'dryRun') throw new BadRequestError(`unknown field "${k}"; expected resources, prune, dryRun`);
  }
  if (!Array.isArray(r.resources)) throw new BadRequestError('"resources" must be a list of { name, spec }');
  if (r.resources.length > MAX_APPLY_ITEMS) throw new BadRequestError(`"resources" holds ${r.resources.length} items; the limit is ${MAX_APPLY_ITEMS}`);
  if (r.dryRun !== undefined && typeof r.dryRun !== 'boolean') throw new BadRequestError('"dryRun" must be true or false');
  const seen = new Set<string>();
  const out: ApplyRequest = { resources: r.resources.map((v, i) => validateItem(v, i, seen)) };
  if (r.prune !== undefined) out.prune = validatePrune(r.prune);
  if (r.dryRun === true) out.dryRun = true;
  return out;
}
