// Placement is pure: given the live workers and their loads, which one takes
// the next resource. Least loaded by assigned/capacity; a full worker takes
// nothing; ties go to fewer assigned, then the smaller id, so every master
// computing the same input gets the same answer.

export interface Slot {
  id: string;
  capacity: number;
  assigned: number;
}

/** compareLoad orders slots by load, exactly (cross-multiplied, no float rounding). */
export function compareLoad(a: Slot, b: Slot): number {
  const byLoad = a.assigned * b.capacity - b.assigned * a.capacity;
  if (byLoad !== 0) return byLoad;
  if (a.assigned !== b.assigned) return a.assigned - b.assigned;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** pick returns the least-loaded slot with room, or undefined when every worker is full (or none is live). */
export function pick(slots: Iterable<Slot>): Slot | undefined {
  let best: Slot | undefined;
  for (const s of slots) {
    if (s.assigned >= s.capacity) continue;
    if (!best || compareLoad(s, best) < 0) best = s;
  }
  return best;
}

/**
 * placeMany assigns `count` resources one by one, each to the least-loaded
 * slot at that moment, updating loads as it goes. Returns worker ids in
 * order; undefined entries stay pending.
 */
export function placeMany(slots: Slot[], count: number): Array<string | undefined> {
  const out: Array<string | undefined> = [];
  for (let i = 0; i < count; i++) {
    const s = pick(slots);
    if (s) s.assigned++;
    out.push(s?.id);
  }
  return out;
}
