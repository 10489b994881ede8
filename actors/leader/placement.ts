// Placement is pure: given the live workers, which one takes a resource, and
// why each other one does not. A worker is eligible when it runs the
// resource's kind, is not cordoned, has room, and satisfies every hard
// constraint (spec.constraints). Among eligible workers the one that
// satisfies most preferences (spec.prefer) wins, then the least loaded by
// assigned/capacity, then fewer assigned, then the smaller id, so every
// master computing the same input gets the same answer. Workers to avoid
// (where the task failed) are taken only when no other is eligible.

import type { Candidate, Constraint } from '#protocol/messages.js';

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
export function describe(c: Constraint): string {
  return c.op === 'in' || c.op === 'notIn' ? `${c.key} ${c.op} [${(c.values ?? []).join(',')}]` : `${c.key} ${c.op}`;
}

/** satisfies says whether labels meet one constraint. */
export function satisfies(labels: Readonly<Record<string, string>>, c: Constraint): boolean {
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
export function score(s: Slot, want: Want): number {
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

/** pick returns the best slot with room for a kind, or undefined. */
export function pick<S extends Slot>(slots: Iterable<S>, kind: string): S | undefined {
  const c = choose(slots, { kind });
  return 'slot' in c ? c.slot : undefined;
}
