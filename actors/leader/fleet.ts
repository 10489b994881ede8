// Fleet operations as decisions over the model, without I/O: which resources
// a drain or a rebalance round moves and where, and why a resource is where
// it is (explain, dry-run). The model carries them out (model.move: a
// handoff, so the old worker stops before the new one starts).
//
// Rebalance follows Akka's least-shard allocation: move from the most loaded
// to the least loaded worker, one resource at a time, while that still
// narrows the gap; at most `max` moves and at most a tenth of all resources
// per round; never a new round while the last one's handoffs are in flight.

import { ResourceState, type Candidate, type Spec } from '#protocol/messages.js';
import { choose, compareLoad, exclusion, rank, type Slot } from './placement.js';
import { wantOf, type ClusterState, type Entry, type WorkerEntry } from './model.js';

const TERMINAL: ReadonlySet<string> = new Set([ResourceState.completed, ResourceState.failed]);

/** slotOf is a worker as placement sees it, with its load adjusted by delta (for planning several moves). */
function slotOf(w: WorkerEntry, delta = 0): Slot {
  return { id: w.id, capacity: w.capacity, assigned: w.assigned + delta, kinds: w.kinds, labels: w.labels, cordoned: w.cordoned };
}

/** movable: not completed or failed, not opted out, not already in a handoff. */
function movable(e: Entry): boolean {
  return !TERMINAL.has(e.rec.state) && e.rec.spec.rebalance !== false && e.handoff === undefined;
}

export interface RebalanceLimits {
  /** Most moves in one round (--rebalance-max). */
  max: number;
  /** Most moves in one round as a fraction of all resources. */
  fraction: number;
}

/** rebalanceMoves plans one round; empty when balanced or while a round's handoffs are still in flight. */
export function rebalanceMoves(model: ClusterState, limits: RebalanceLimits): Array<{ name: string; to: WorkerEntry }> {
  if (model.leaving.size > 0) return [];
  const budget = Math.min(limits.max, Math.max(1, Math.floor(model.resources.size * limits.fraction)));
  // Working copies of each worker's load, so the round can plan several moves.
  const load = new Map<string, number>([...model.workers.values()].map((w) => [w.id, w.assigned]));
  const slot = (w: WorkerEntry) => ({ id: w.id, capacity: w.capacity, assigned: load.get(w.id)! });
  const moves: Array<{ name: string; to: WorkerEntry }> = [];
  const tried = new Set<string>();
  while (moves.length < budget) {
    const open = [...model.workers.values()].filter((w) => !w.cordoned && w.capacity > 0);
    if (open.length < 2) break;
    const sorted = open.sort((a, b) => compareLoad(slot(a), slot(b)));
    const least = sorted[0]!;
    const most = sorted[sorted.length - 1]!;
    // Worth it only while the move leaves `most` at least as loaded as `least` becomes.
    if ((load.get(most.id)! - 1) * least.capacity < (load.get(least.id)! + 1) * most.capacity) break;
    const name = [...most.names].sort().find((n) => {
      const e = model.resources.get(n)!;
      return !tried.has(n) && movable(e) && exclusion(slotOf(least, load.get(least.id)! - least.assigned), wantOf(e.rec.spec)) === undefined;
    });
    if (!name) break;
    tried.add(name);
    moves.push({ name, to: least });
    load.set(most.id, load.get(most.id)! - 1);
    load.set(least.id, load.get(least.id)! + 1);
  }
  return moves;
}

/** drainMoves plans moving everything movable off a worker: where each goes, and what must stay. */
export function drainMoves(model: ClusterState, worker: string): { moves: Array<{ name: string; to: WorkerEntry }>; remaining: string[] } {
  const w = model.workers.get(worker);
  if (!w) return { moves: [], remaining: [] };
  const others = [...model.workers.values()].filter((o) => o.id !== worker);
  const extra = new Map<string, number>();
  const moves: Array<{ name: string; to: WorkerEntry }> = [];
  const remaining: string[] = [];
  for (const name of [...w.names].sort()) {
    const e = model.resources.get(name)!;
    if (TERMINAL.has(e.rec.state) || e.handoff) continue;
    const pick = choose(others.map((o) => slotOf(o, extra.get(o.id) ?? 0)), wantOf(e.rec.spec));
    if (!('slot' in pick)) {
      remaining.push(name);
      continue;
    }
    const to = model.workers.get(pick.slot.id)!;
    extra.set(to.id, (extra.get(to.id) ?? 0) + 1);
    moves.push({ name, to });
  }
  return { moves, remaining };
}

/** explain says where a resource is (or would go) and why, with every live worker ranked. */
export function explain(model: ClusterState, name: string): { worker: string | null; reason: string; candidates: Candidate[] } | undefined {
  const e = model.resources.get(name);
  if (!e) return undefined;
  const want = wantOf(e.rec.spec);
  // Judge every worker as if this resource were not on it yet, so its own worker is not "full" of it.
  const slots = [...model.workers.values()].map((w) => slotOf(w, w.names.has(name) ? -1 : 0));
  const candidates = rank(slots, want);
  if (TERMINAL.has(e.rec.state)) return { worker: null, reason: `${e.rec.state}: it does not run again until resource.restart`, candidates };
  if (!e.rec.worker) return { worker: null, reason: e.rec.reason ?? 'pending', candidates };
  const at = e.rec.worker;
  const top = candidates[0];
  const reason = e.handoff
    ? `moving from ${e.handoff.from.worker} to ${at} (${e.handoff.reason}); ${at} starts it once ${e.handoff.from.worker} has stopped it`
    : top && top.worker === at
      ? `on ${at}: the best of the eligible workers`
      : `on ${at}: placed there when it was the best fit; placements do not change until a move (rebalance, drain, worker loss)`;
  return { worker: at, reason, candidates };
}

/** dryRun answers where an add would place a resource, writing nothing: its current worker if it exists. */
export function dryRun(model: ClusterState, name: string, spec: Spec): { worker: string | null; reason?: string; candidates: Candidate[] } {
  const existing = explain(model, name);
  if (existing) return { worker: existing.worker, reason: `${name} exists: an add would leave it as it is (${existing.reason})`, candidates: existing.candidates };
  const want = wantOf(spec);
  const candidates = rank(model.workers.values(), want);
  const pick = choose(model.workers.values(), want);
  return 'slot' in pick ? { worker: pick.slot.id, candidates } : { worker: null, reason: pick.reason, candidates };
}
