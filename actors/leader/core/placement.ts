// Placement: given the live workers, which one takes a resource, and why
// each other one does not (choose, rank); and the rules that carry a choice
// out on the state (place, placePending). A worker is eligible when it runs the
// resource's kind, is not cordoned, has room, and satisfies every hard
// constraint (spec.constraints). Among eligible workers the one that
// satisfies most preferences (spec.prefer) wins, then the least loaded by
// assigned/capacity, then fewer assigned, then the smaller id, so every
// master computing the same input gets the same answer. Workers to avoid
// (where the task failed) are taken only when no other is eligible.

import { ResourceState, type Candidate, type Constraint, type MoveReason, type Spec } from '#protocol/messages.js';
import { taskKindOf } from '#protocol/validate.js';
import { parseShard, shardCount, shardName } from '#protocol/shards.js';
import type { ClusterState } from './state.js';
import type { Entry, WorkerEntry } from './records.js';
import { beginHandoff, endHandoff } from './handoffs.js';

/** Pending resources a batch may try to place, per resource its budget lets it touch. */
const SCAN_PER_BUDGET = 4;

export interface Slot {
  id: string;
  capacity: number;
  assigned: number;
  /** The task kinds it runs. */
  kinds: ReadonlySet<string>;
  labels: Readonly<Record<string, string>>;
  /** Takes nothing new. */
  cordoned: boolean;
}

export interface Want {
  kind: string;
  constraints?: readonly Constraint[];
  prefer?: readonly Constraint[];
  /** Prefer any other worker to these. */
  avoid?: ReadonlySet<string>;
}

/** compareLoad orders slots by load, exactly (cross-multiplied, no float rounding). */
export function compareLoad(a: Pick<Slot, 'id' | 'capacity' | 'assigned'>, b: Pick<Slot, 'id' | 'capacity' | 'assigned'>): number {
  const byLoad = a.assigned * b.capacity - b.assigned * a.capacity;
  if (byLoad !== 0) return byLoad;
  if (a.assigned !== b.assigned) return a.assigned - b.assigned;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** describe renders a constraint as people write it: `zone in [eu,us]`, `gpu exists`. */
function describe(c: Constraint): string {
  return c.op === 'in' || c.op === 'notIn' ? `${c.key} ${c.op} [${(c.values ?? []).join(',')}]` : `${c.key} ${c.op}`;
}

/** satisfies says whether labels meet one constraint. */
function satisfies(labels: Readonly<Record<string, string>>, c: Constraint): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, c.key);
  switch (c.op) {
    case 'exists':
      return has;
    case 'notExists':
      return !has;
    case 'in':
      return has && (c.values ?? []).includes(labels[c.key]!);
    case 'notIn':
      return !has || !(c.values ?? []).includes(labels[c.key]!);
  }
}

/** exclusion is the rule that keeps a slot from taking the resource, or undefined when it may (room aside when ignoreRoom). */
export function exclusion(s: Slot, want: Want, opts: { ignoreRoom?: boolean } = {}): string | undefined {
  if (!s.kinds.has(want.kind)) return `does not run kind ${want.kind}`;
  if (s.cordoned) return 'cordoned';
  for (const c of want.constraints ?? []) if (!satisfies(s.labels, c)) return `constraint ${describe(c)}`;
  if (!opts.ignoreRoom && s.assigned >= s.capacity) return `full (${s.assigned}/${s.capacity})`;
  return undefined;
}

/** score is higher for better slots: whole points per satisfied preference, plus the free fraction. */
function score(s: Slot, want: Want): number {
  const preferred = (want.prefer ?? []).filter((c) => satisfies(s.labels, c)).length;
  const free = s.capacity > 0 ? 1 - s.assigned / s.capacity : 0;
  return Math.round((preferred + free) * 1000) / 1000;
}

function better<S extends Slot>(a: S, b: S, want: Want): boolean {
  const pa = (want.prefer ?? []).filter((c) => satisfies(a.labels, c)).length;
  const pb = (want.prefer ?? []).filter((c) => satisfies(b.labels, c)).length;
  if (pa !== pb) return pa > pb;
  return compareLoad(a, b) < 0;
}

/** choose returns the best slot for a resource, or why there is none (the resource's `reason` while pending). */
export function choose<S extends Slot>(slots: Iterable<S>, want: Want): { slot: S } | { reason: string } {
  let best: S | undefined;
  let fallback: S | undefined;
  const why = new Map<string, string[]>();
  for (const s of slots) {
    const ex = exclusion(s, want);
    if (ex !== undefined) {
      why.set(ex, [...(why.get(ex) ?? []), s.id]);
      continue;
    }
    if (want.avoid?.has(s.id)) {
      if (!fallback || better(s, fallback, want)) fallback = s;
    } else if (!best || better(s, best, want)) best = s;
  }
  const slot = best ?? fallback;
  if (slot) return { slot };
  return { reason: reasonOf(why, want.kind) };
}

/** reasonOf says why no worker fits, naming the rule that excluded each (or how many it excluded). */
function reasonOf(why: Map<string, string[]>, kind: string): string {
  if (why.size === 0) return 'no live worker';
  const kindRule = `does not run kind ${kind}`;
  if (why.size === 1 && why.has(kindRule)) return `no live worker runs kind ${kind}`;
  const parts = [...why]
    .filter(([rule]) => rule !== kindRule)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([rule, ids]) => (ids.length <= 3 ? `${ids.sort().join(', ')}: ${rule}` : `${ids.length} workers: ${rule}`));
  return `no worker fits (${parts.join('; ')})`;
}

/** rank lists every slot for explain and dry-run: eligible ones best first with their score, then the excluded with their rule. */
export function rank<S extends Slot>(slots: Iterable<S>, want: Want): Candidate[] {
  const ok: S[] = [];
  const out: Candidate[] = [];
  for (const s of slots) {
    const ex = exclusion(s, want);
    if (ex === undefined) ok.push(s);
    else out.push({ worker: s.id, excluded: ex });
  }
  ok.sort((a, b) => (better(a, b, want) ? -1 : better(b, a, want) ? 1 : 0));
  out.sort((a, b) => (a.worker < b.worker ? -1 : 1));
  return [...ok.map((s) => ({ worker: s.id, score: score(s, want) })), ...out];
}

/** wantOf is what placement needs of a spec: its kind and its label rules. */
export function wantOf(spec: Spec): Want {
  return {
    kind: taskKindOf(spec),
    ...(Array.isArray(spec.constraints) ? { constraints: spec.constraints as unknown as Constraint[] } : {}),
    ...(Array.isArray(spec.prefer) ? { prefer: spec.prefer as unknown as Constraint[] } : {}),
  };
}

export interface PlaceOptions {
  avoid?: ReadonlySet<string>;
  /** Holds the start back (a restart's backoff). */
  delayMs?: number;
  state?: ResourceState;
  to?: WorkerEntry;
  reason?: MoveReason;
  /** A move: the current owner must stop before `to` starts. */
  handoff?: boolean;
  deadlineMs?: number;
}

/**
 * place gives the resource its next attempt on the best worker for it,
 * avoiding `avoid` when it can, or makes it pending with the reason none fits.
 */
export function place(s: ClusterState, e: Entry, opts: PlaceOptions = {}): void {
  const name = e.rec.name;
  s.touch(name);
  const from = e.rec.worker;
  const fromAssign = e.assign;
  if (from) s.free(from, name);
  s.pending.delete(name);
  endHandoff(s, e);
  const avoid = opts.avoid ?? siblings(s, name);
  const pick = opts.to ? { slot: opts.to } : choose(s.workers.values(), { ...wantOf(e.rec.spec), ...(avoid ? { avoid } : {}) });
  const to = 'slot' in pick ? (pick.slot as WorkerEntry) : undefined;
  if (to) {
    const attempt = e.rec.attempt + 1;
    const wait = s.fenceWaits.startAfter(name, opts.delayMs);
    const { reason: _r, delayMs: _d, ...rest } = e.rec;
    e.rec = { ...rest, worker: to.id, state: opts.state ?? ResourceState.starting, attempt, ...(wait.delayMs ? { delayMs: wait.delayMs } : {}) };
    // A live previous owner must stop before the next one starts.
    const hold = opts.handoff === true && fromAssign !== undefined;
    e.assign = { worker: to.id, epoch: to.epoch, attempt, ...wait, ...(e.rec.checkpoint ? { checkpoint: true } : {}), ...(hold ? { hold: true } : {}) };
    if (hold) beginHandoff(s, e, fromAssign!, opts.reason ?? 'rebalance', opts.deadlineMs);
    to.names.add(name);
  } else {
    const { delayMs: _d, ...rest } = e.rec;
    e.rec = { ...rest, worker: null, state: ResourceState.pending, reason: 'reason' in pick ? pick.reason : 'no worker' };
    e.assign = undefined;
    s.pending.add(name);
  }
  e.cpSeq = undefined;
  const moved = from !== (to?.id ?? null);
  if (moved || e.revision === 0) s.log.moves.push({ name, id: e.rec.id, from, to: to?.id ?? null, deleted: false, reason: opts.reason ?? 'lost' });
}

/** siblings are the workers of a shard's other shards: a shard prefers a worker none of them is on. */
export function siblings(s: ClusterState, name: string): ReadonlySet<string> | undefined {
  const p = parseShard(name);
  const count = p && shardCount(s.resources.get(p.name)?.rec.spec ?? {});
  if (!p || !count) return undefined;
  const out = new Set<string>();
  for (let i = 0; i < count; i++) {
    const w = i === p.index ? null : s.resources.get(shardName(p.name, i))?.rec.worker;
    if (w) out.add(w);
  }
  return out.size > 0 ? out : undefined;
}

/**
 * placePending places every pending resource that some worker fits, when
 * anything changed that could allow it, as far as the batch's budget goes.
 * One whose worker is gone is written as pending if nothing fits. A batch
 * tries at most SCAN_PER_BUDGET times its budget, so that a large loss with
 * little room left does not make every batch try every pending resource;
 * one that still fits nowhere goes to the back, and the next batch goes on
 * with the rest.
 */
export function placePending(s: ClusterState): void {
  s.backlog(() => placeSome(s));
}

function placeSome(s: ClusterState): void {
  let left = Math.min(s.toTry, s.pending.size);
  // What changes while we place asks for a pass of its own, next time.
  s.toTry = 0;
  let tries = 0;
  // No copy of the set (it can hold tens of thousands): place() deletes the
  // name, and adds it back, at the back, when a lost one is written pending.
  for (const name of s.pending) {
    if (left <= 0) return;
    if (s.spent || tries >= s.budgetSize * SCAN_PER_BUDGET) {
      s.cut = true;
      s.toTry = Math.max(s.toTry, left);
      return;
    }
    tries++;
    left--;
    const e = s.resources.get(name)!;
    const lost = e.rec.worker !== null && !s.workers.has(e.rec.worker);
    const pick = choose(s.workers.values(), wantOf(e.rec.spec));
    if ('slot' in pick || lost) {
      place(s, e);
      continue;
    }
    if (e.rec.reason !== pick.reason) e.rec = { ...e.rec, reason: pick.reason };
    s.pending.delete(name);
    s.pending.add(name);
  }
}
