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

export type Outcome =
  | { op: 'add'; created: boolean; rec: StoredResource }
  | { op: 'delete'; rec: StoredResource }
  | { op: 'restart'; rec: StoredResource }
  | { op: 'absent'; name: string };

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
type Recorded = ['a', string, string] | ['e', string, string] | ['d', StoredResource] | ['r', string, string] | ['n', string];

function recordOf(o: Outcome): Recorded {
  if (o.op === 'absent') return ['n', o.name];
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
  }
  return out;
}
