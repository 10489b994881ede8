// Write outcomes as the leader records them under keys.dedupe, so that a
// re-sent request gets its first answer from this leader or the next.
//
// Outcome is a write's answer without its revision, which the transaction's
// own revision supplies. A write that changed nothing has one too: an add
// answered "exists", a delete or restart answered NOT_FOUND. A copy of such a
// request that turns up later (held by a hung master, handed over when its
// leadership was lost) must get that answer again, not run after whatever
// came since: an "exists" add replayed after a delete would create the
// resource again, for an id nobody was told was created.

import { packed } from './codec.js';
import type { StoredResource } from './stored.js';
import { isErrorCode } from './errors.js';
import type { ApplyItemResult } from './apply.js';

export type Outcome =
  | { op: 'add'; created: boolean; rec: StoredResource }
  | { op: 'delete'; rec: StoredResource }
  | { op: 'restart'; rec: StoredResource }
  | { op: 'absent'; name: string }
  /** An apply's answer as it is: names, ids and outcome codes, small enough to record whole. */
  | { op: 'apply'; results: ApplyItemResult[]; pruned: string[]; prunedMore?: true };

/** A remembered outcome: in full when this leader made it, as a name and id when an earlier leader recorded it. */
export type KnownOutcome =
  | Outcome
  | { op: 'added'; name: string; id: string }
  | { op: 'existed'; name: string; id: string }
  | { op: 'restarted'; name: string; id: string };

/**
 * What etcd keeps: an add only as name and id (the record itself is in
 * gaffer/resources, so a new leader need not read it twice), a delete with
 * the record it removed (nothing else has it any more).
 */
type Recorded =
  | ['a', string, string]
  | ['e', string, string]
  | ['d', StoredResource]
  | ['r', string, string]
  | ['n', string]
  | ['A', AppliedItem[], string[], boolean];

/**
 * An apply's item as recorded: [name, 'c' | 'u' | 'n', id] for created,
 * updated, unchanged; [name, 'x', code, message] for a refused item.
 */
type AppliedItem = [string, string, string] | [string, 'x', string, string];
const APPLY_CODES = { created: 'c', updated: 'u', unchanged: 'n' } as const;
const APPLY_OUTCOMES = { c: 'created', u: 'updated', n: 'unchanged' } as const;

function appliedItem(r: ApplyItemResult): AppliedItem {
  return 'error' in r ? [r.name, 'x', r.error.code, r.error.message] : [r.name, APPLY_CODES[r.outcome], r.id];
}

function applyItemOf(v: unknown): ApplyItemResult | undefined {
  if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[2] !== 'string') return undefined;
  if (v[1] === 'x') return isErrorCode(v[2]) && typeof v[3] === 'string' ? { name: v[0], error: { code: v[2], message: v[3] } } : undefined;
  const outcome = APPLY_OUTCOMES[v[1] as keyof typeof APPLY_OUTCOMES];
  return outcome ? { name: v[0], id: v[2], outcome } : undefined;
}

function decodeApply(rec: unknown[]): Outcome | undefined {
  if (!Array.isArray(rec[1]) || !Array.isArray(rec[2])) return undefined;
  const results: ApplyItemResult[] = [];
  for (const v of rec[1] as unknown[]) {
    const r = applyItemOf(v);
    if (!r) return undefined;
    results.push(r);
  }
  const pruned = (rec[2] as unknown[]).filter((n): n is string => typeof n === 'string');
  return { op: 'apply', results, pruned, ...(rec[3] === true ? { prunedMore: true as const } : {}) };
}

function recordOf(o: Outcome): Recorded {
  if (o.op === 'absent') return ['n', o.name];
  if (o.op === 'apply') return ['A', o.results.map(appliedItem), o.pruned, o.prunedMore === true];
  if (o.op === 'add') return [o.created ? 'a' : 'e', o.rec.name, o.rec.id];
  if (o.op === 'restart') return ['r', o.rec.name, o.rec.id];
  return ['d', o.rec];
}

/** encodeOutcomes is the value of one dedupe record: outcomes by request id. */
export function encodeOutcomes(entries: ReadonlyArray<readonly [string, Outcome]>): Uint8Array {
  return packed.encode(entries.map(([id, o]) => [id, recordOf(o)]));
}

/** decodeOutcomes reads one dedupe record back, skipping any entry not shaped like one we write. */
export function decodeOutcomes(value: Uint8Array): Array<[string, KnownOutcome]> {
  const entries = packed.decode(value);
  if (!Array.isArray(entries)) return [];
  const out: Array<[string, KnownOutcome]> = [];
  for (const e of entries as unknown[]) {
    if (!Array.isArray(e) || typeof e[0] !== 'string' || !Array.isArray(e[1])) continue;
    const [id, rec] = e as [string, unknown[]];
    if ((rec[0] === 'a' || rec[0] === 'e' || rec[0] === 'r') && typeof rec[1] === 'string' && typeof rec[2] === 'string') {
      const op = rec[0] === 'a' ? 'added' : rec[0] === 'e' ? 'existed' : 'restarted';
      out.push([id, { op, name: rec[1], id: rec[2] }]);
    } else if (rec[0] === 'n' && typeof rec[1] === 'string') out.push([id, { op: 'absent', name: rec[1] }]);
    else if (rec[0] === 'd' && rec[1] && typeof rec[1] === 'object') out.push([id, { op: 'delete', rec: rec[1] as StoredResource }]);
    else if (rec[0] === 'A') {
      const o = decodeApply(rec);
      if (o) out.push([id, o]);
    }
  }
  return out;
}
