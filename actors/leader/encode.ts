// encode turns a Plan into etcd transactions: the change log's writes become
// operations and msgpack values (one unit per touched resource: its resource,
// assignment and checkpoint keys always commit together), units are packed
// into transactions within etcd's limits, and each transaction carries the
// dedupe record of the write outcomes it describes. The assignment changes
// workers are told of once a transaction commits are built here too, beside
// the operations they mirror.

import { keys } from '#protocol/keys.js';
import { packed } from '#protocol/codec.js';
import type { Outcome } from '#protocol/outcomes.js';
import type { StoredAssignment, StoredHandoff, StoredResource } from '#protocol/stored.js';
import { MAX_TXN_OPS, type Op } from '#platform/ports.js';
import { sameAssign, type Assignment, type Entry } from './core/records.js';
import type { Plan, Writes } from './core/batch.js';
import { removed, type AssignChange } from './assign-publisher.js';

export interface Unit {
  name: string;
  ops: Op[];
  /** What its workers are told once it commits. */
  assigns: AssignChange[];
  /** Bytes of values this unit writes, to keep a transaction under etcd's request limit. */
  bytes: number;
}

export interface Txn {
  /** Resources this transaction writes; they take its revision. */
  names: string[];
  ops: Op[];
  /** Write outcomes it records, by request id, for re-sent requests. */
  entries: Array<[string, Outcome]>;
  /** What workers are told once it commits. */
  assigns: AssignChange[];
}

/** Per transaction, one op is kept for the dedupe record and one for the commit chain. */
const OPS_PER_TXN = MAX_TXN_OPS - 2;
/** etcd refuses requests over 1.5 MiB; checkpoints can be 64 KiB each. */
const BYTES_PER_TXN = 1024 * 1024;

const bytesOf = (ops: Op[]): number => ops.reduce((n, op) => n + ('put' in op ? op.value.byteLength + op.put.length : op.del.length), 0);

/** units returns the operations that make etcd match a batch's writes, one unit per resource. */
export function units(w: Writes, term: number): Unit[] {
  const out: Unit[] = [];
  for (const { name, before, after: e, checkpoint, dropCheckpoint } of w.resources) {
    const ops: Op[] = [];
    const assigns: AssignChange[] = [];
    if (e) ops.push({ put: keys.resource(name), value: packed.encode(recordValue(e, term)) });
    else if (before.existed) ops.push({ del: keys.resource(name) });
    const was = before.assign;
    const now = e?.assign;
    if (was && was.worker !== now?.worker) {
      ops.push({ del: keys.assignment(was.worker, name) });
      assigns.push(removed(was.worker, name, before.id, was.attempt, was.epoch));
    }
    if (now && (!sameAssign(was, now) || before.id !== e!.rec.id)) {
      const value = assignmentValue(e!, now, term);
      ops.push({ put: keys.assignment(now.worker, name), value: packed.encode(value) });
      const { epoch, term: _term, ...task } = value;
      assigns.push({ type: 'put', worker: now.worker, task, epoch, ...(now.notBefore !== undefined ? { notBefore: now.notBefore } : {}) });
    }
    if (checkpoint) ops.push({ put: keys.checkpoint(name), value: packed.encode(checkpoint) });
    else if (dropCheckpoint) ops.push({ del: keys.checkpoint(name) });
    if (ops.length > 0) out.push({ name, ops, assigns, bytes: bytesOf(ops) });
  }
  for (const { id, cordon } of w.cordons) {
    const key = keys.cordon(id);
    out.push(cordon ? { name: `cordon:${id}`, ops: [{ put: key, value: packed.encode(cordon) }], assigns: [], bytes: key.length + 16 } : { name: `cordon:${id}`, ops: [{ del: key }], assigns: [], bytes: key.length });
  }
  // An orphan key that this batch writes anyway needs no delete (and etcd
  // rejects a transaction that names one key twice).
  const written = new Set(out.flatMap((u) => u.ops.map((op) => ('put' in op ? op.put : op.del))));
  for (const o of w.orphans) {
    const key = keys.assignment(o.worker, o.name);
    if (!written.has(key)) out.push({ name: o.name, ops: [{ del: key }], assigns: [removed(o.worker, o.name)], bytes: key.length });
  }
  return out;
}

/**
 * txns packs a plan into transactions, in commit order. The write outcomes
 * commit with the writes they describe, or not at all; outcomes that wrote
 * nothing ("exists", NOT_FOUND) go with the batch's last transaction (in one
 * of their own if it has none): a late copy must get them again, from this
 * leader or the next. `record` is the dedupe record op (dedupe-lease.ts).
 */
export function txns(p: Plan, term: number, record: (entries: Array<[string, Outcome]>) => Op): Txn[] {
  const all = units(p.writes, term);
  const written = new Set(all.map((u) => u.name));
  const unwritten = [...p.outcomes].flatMap(([name, es]) => (written.has(name) ? [] : es));
  const chunks = chunk(all, OPS_PER_TXN, BYTES_PER_TXN);
  const out: Txn[] = chunks.map((t, i) => {
    const ops = t.flatMap((u) => u.ops);
    const entries = [...t.flatMap((u) => p.outcomes.get(u.name) ?? []), ...(i === chunks.length - 1 ? unwritten : [])];
    if (entries.length > 0) ops.push(record(entries));
    return { names: t.map((u) => u.name), ops, entries, assigns: t.flatMap((u) => u.assigns) };
  });
  if (chunks.length === 0 && unwritten.length > 0) out.push({ names: [], ops: [record(unwritten)], entries: unwritten, assigns: [] });
  // Reads are answered only after a fenced transaction proves we still lead.
  if (out.length === 0 && p.replies.some((r) => !r.unfenced)) out.push({ names: [], ops: [], entries: [], assigns: [] });
  return out;
}

/** assignedTask is a resource's assignment as its worker is told it. */
export function assignedTask(e: Readonly<Entry> | undefined, term: number): AssignChange | undefined {
  if (!e?.assign) return undefined;
  const { epoch, term: _term, ...task } = assignmentValue(e, e.assign, term);
  return { type: 'put', worker: e.assign.worker, task, epoch };
}

function assignmentValue(e: Pick<Entry, 'rec'>, a: Assignment, term: number): StoredAssignment {
  const { name, id, spec, createdAt } = e.rec;
  return {
    name, id, worker: a.worker, spec, createdAt, attempt: a.attempt,
    ...(a.delayMs ? { delayMs: a.delayMs } : {}),
    ...(a.checkpoint ? { checkpoint: true } : {}),
    ...(a.hold ? { hold: true } : {}),
    ...(e.rec.sched?.current ? { run: e.rec.sched.current.run } : {}),
    epoch: a.epoch, term,
  };
}

/** recordValue is what etcd keeps for an entry: the record, who wrote it, and the bookkeeping a new leader needs. */
function recordValue(e: Pick<Entry, 'rec' | 'assign' | 'handoff'>, term: number): StoredResource & { term: number; epoch?: string; handoff?: StoredHandoff } {
  const h = e.handoff;
  return {
    ...e.rec,
    term,
    ...(e.assign ? { epoch: e.assign.epoch } : {}),
    ...(h ? { handoff: { worker: h.from.worker, epoch: h.from.epoch, attempt: h.from.attempt, reason: h.reason } } : {}),
  };
}

/**
 * chunk packs units into transactions of at most maxOps operations and
 * maxBytes of values, never splitting a unit.
 */
export function chunk(units: Unit[], maxOps: number, maxBytes = Number.MAX_SAFE_INTEGER): Unit[][] {
  const out: Unit[][] = [];
  let cur: Unit[] = [];
  let n = 0;
  let bytes = 0;
  for (const u of units) {
    if ((n + u.ops.length > maxOps || bytes + u.bytes > maxBytes) && cur.length > 0) {
      out.push(cur);
      cur = [];
      n = 0;
      bytes = 0;
    }
    cur.push(u);
    n += u.ops.length;
    bytes += u.bytes;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}
