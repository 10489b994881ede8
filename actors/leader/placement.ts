// Placement is pure: given the live workers and their loads, which one takes
// the next resource. Only workers that run the resource's kind and have room
// qualify; among them the least loaded by assigned/capacity wins, ties going
// to fewer assigned and then the smaller id, so every master computing the
// same input gets the same answer. Workers to avoid (where the task failed)
// are taken only when no other qualifies.

export interface Slot {
  id: string;
  capacity: number;
  assigned: number;
  /** The task kinds it runs. */
  kinds: ReadonlySet<string>;
}

/** compareLoad orders slots by load, exactly (cross-multiplied, no float rounding). */
export function compareLoad(a: Pick<Slot, 'id' | 'capacity' | 'assigned'>, b: Pick<Slot, 'id' | 'capacity' | 'assigned'>): number {
  const byLoad = a.assigned * b.capacity - b.assigned * a.capacity;
  if (byLoad !== 0) return byLoad;
  if (a.assigned !== b.assigned) return a.assigned - b.assigned;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export interface Want {
  kind: string;
  /** Prefer any other worker to these. */
  avoid?: ReadonlySet<string>;
}

/** choose returns the best slot for a resource, or why there is none (the resource's `reason` while pending). */
export function choose<S extends Slot>(slots: Iterable<S>, want: Want): { slot: S } | { reason: string } {
  let best: S | undefined;
  let fallback: S | undefined;
  let live = 0;
  let runs = 0;
  for (const s of slots) {
    live++;
    if (!s.kinds.has(want.kind)) continue;
    runs++;
    if (s.assigned >= s.capacity) continue;
    if (want.avoid?.has(s.id)) {
      if (!fallback || compareLoad(s, fallback) < 0) fallback = s;
    } else if (!best || compareLoad(s, best) < 0) best = s;
  }
  const slot = best ?? fallback;
  if (slot) return { slot };
  if (live === 0) return { reason: 'no live worker' };
  if (runs === 0) return { reason: `no live worker runs kind ${want.kind}` };
  return { reason: 'no worker that runs this kind has room' };
}

/** pick returns the least-loaded slot with room for a kind, or undefined. */
export function pick<S extends Slot>(slots: Iterable<S>, kind: string): S | undefined {
  const c = choose(slots, { kind });
  return 'slot' in c ? c.slot : undefined;
}
