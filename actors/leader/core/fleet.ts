// Fleet operations: cordon, drain, the rebalance round, explain and dry-run.
// A drain or a rebalance round plans its moves first (which resources, and
// where), then carries them out as handoffs (move), so the old worker stops
// before the new one starts.
//
// Rebalance follows Akka's least-shard allocation: move from the most loaded
// to the least loaded worker, one resource at a time, while that still
// narrows the gap; at most `max` moves and at most a tenth of all resources
// per round; never a new round while the last one's handoffs are in flight.

import { NotFoundError } from '#protocol/errors.js';
import type { Candidate, MoveReason, Spec } from '#protocol/messages.js';
import type { ClientRequest, Command } from '#protocol/request.js';
import { choose, compareLoad, exclusion, place, rank, siblings, wantOf, type Slot } from './placement.js';
import type { ClusterState } from './state.js';
import { isSharded, whereShards } from './shards.js';
import { TERMINAL, type Entry, type WorkerEntry } from './records.js';
import { applyCordon } from './workers.js';
import type { PlannedEvent, PlannedReply, RebalanceLimits, WireReply } from './batch.js';

/** slotOf is a worker as placement sees it, with its load adjusted by delta (for planning several moves). */
function slotOf(w: WorkerEntry, delta = 0): Slot {
  return { id: w.id, capacity: w.capacity, assigned: w.assigned + delta, kinds: w.kinds, labels: w.labels, cordoned: w.cordoned };
}

/** movable: not completed or failed, not opted out, not already in a handoff. */
function movable(e: Entry): boolean {
  return !TERMINAL.has(e.rec.state) && e.rec.spec.rebalance !== false && e.handoff === undefined;
}

/** rebalanceMoves plans one round; empty when balanced or while a round's handoffs are still in flight. */
function rebalanceMoves(s: ClusterState, limits: RebalanceLimits): Array<{ name: string; to: WorkerEntry }> {
  if (s.leaving.size > 0) return [];
  const budget = Math.min(limits.max, Math.max(1, Math.floor(s.resources.size * limits.fraction)));
  // Working copies of each worker's load, so the round can plan several moves.
  const load = new Map<string, number>([...s.workers.values()].map((w) => [w.id, w.assigned]));
  const slot = (w: WorkerEntry) => ({ id: w.id, capacity: w.capacity, assigned: load.get(w.id)! });
  const moves: Array<{ name: string; to: WorkerEntry }> = [];
  const tried = new Set<string>();
  while (moves.length < budget) {
    const open = [...s.workers.values()].filter((w) => !w.cordoned && w.capacity > 0);
    if (open.length < 2) break;
    const sorted = open.sort((a, b) => compareLoad(slot(a), slot(b)));
    const least = sorted[0]!;
    const most = sorted[sorted.length - 1]!;
    // Worth it only while the move leaves `most` at least as loaded as `least` becomes.
    if ((load.get(most.id)! - 1) * least.capacity < (load.get(least.id)! + 1) * most.capacity) break;
    const name = [...most.names].sort().find((n) => {
      const e = s.resources.get(n)!;
      // A shard does not move onto a worker one of its other shards is on.
      return !tried.has(n) && movable(e) && !siblings(s, n)?.has(least.id) && exclusion(slotOf(least, load.get(least.id)! - least.assigned), wantOf(e.rec.spec)) === undefined;
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
function drainMoves(s: ClusterState, worker: string): { moves: Array<{ name: string; to: WorkerEntry }>; remaining: string[] } {
  const w = s.workers.get(worker);
  if (!w) return { moves: [], remaining: [] };
  const others = [...s.workers.values()].filter((o) => o.id !== worker);
  const extra = new Map<string, number>();
  const moves: Array<{ name: string; to: WorkerEntry }> = [];
  const remaining: string[] = [];
  for (const name of [...w.names].sort()) {
    const e = s.resources.get(name)!;
    if (TERMINAL.has(e.rec.state) || e.handoff) continue;
    const avoid = siblings(s, name);
    const pick = choose(others.map((o) => slotOf(o, extra.get(o.id) ?? 0)), { ...wantOf(e.rec.spec), ...(avoid ? { avoid } : {}) });
    if (!('slot' in pick)) {
      remaining.push(name);
      continue;
    }
    const to = s.workers.get(pick.slot.id)!;
    extra.set(to.id, (extra.get(to.id) ?? 0) + 1);
    moves.push({ name, to });
  }
  return { moves, remaining };
}

/** move gives a resource's next attempt to `to`, stopping it on its current worker first (a handoff). */
export function move(s: ClusterState, name: string, to: WorkerEntry, reason: MoveReason, deadlineMs?: number): void {
  const e = s.resources.get(name);
  if (!e) return;
  place(s, e, { to, reason, handoff: true, ...(deadlineMs !== undefined ? { deadlineMs } : {}) });
}

/** cordon sets or clears a worker's cordon (and drain mark); it outlives the worker's restarts. */
export function cordon(s: ClusterState, id: string, on: boolean, draining = false, moved?: number, deadlineMs?: number): void {
  if (on) s.cordons.set(id, { draining, ...(moved !== undefined ? { moved } : {}), ...(deadlineMs !== undefined ? { deadlineMs } : {}) });
  else s.cordons.delete(id);
  s.log.cordons.add(id);
  const w = s.workers.get(id);
  if (w) applyCordon(s, w);
  s.toTry = Infinity;
}

/** explain says where a resource is (or would go) and why, with every live worker ranked. */
function explain(s: ClusterState, name: string): { worker: string | null; reason: string; candidates: Candidate[] } | undefined {
  const e = s.resources.get(name);
  if (!e) return undefined;
  const want = wantOf(e.rec.spec);
  // Judge every worker as if this resource were not on it yet, so its own worker is not "full" of it.
  const slots = [...s.workers.values()].map((w) => slotOf(w, w.names.has(name) ? -1 : 0));
  const candidates = rank(slots, want);
  if (TERMINAL.has(e.rec.state)) {
    const until = e.rec.state === 'scheduled' ? 'its next fire (or schedule.trigger)' : 'resource.restart';
    return { worker: null, reason: `${e.rec.state}: it does not run again until ${until}`, candidates };
  }
  if (isSharded(e)) return { worker: null, reason: whereShards(s, e), candidates };
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
function dryRun(s: ClusterState, name: string, spec: Spec): { worker: string | null; reason?: string; candidates: Candidate[] } {
  const existing = explain(s, name);
  if (existing) return { worker: existing.worker, reason: `${name} exists: an add would leave it as it is (${existing.reason})`, candidates: existing.candidates };
  const want = wantOf(spec);
  const candidates = rank(s.workers.values(), want);
  const pick = choose(s.workers.values(), want);
  return 'slot' in pick ? { worker: pick.slot.id, candidates } : { worker: null, reason: pick.reason, candidates };
}

export type FleetCommand = Extract<Command, { op: 'cordon' | 'uncordon' | 'drain' | 'explain' }> | Extract<Command, { op: 'add' }>;

const noWorker = (id: string): WireReply => ({ ok: false, error: new NotFoundError(`no live worker ${id}`).toWire() });
const noResource = (name: string): WireReply => ({ ok: false, error: new NotFoundError(`no resource named ${name}`).toWire() });

export function planFleet(s: ClusterState, req: ClientRequest, c: FleetCommand, events: PlannedEvent[]): PlannedReply {
  switch (c.op) {
    case 'add': {
      const r = dryRun(s, c.name, c.spec);
      return { req, build: () => ({ ok: true, dryRun: true, ...r }) };
    }
    case 'explain': {
      const r = explain(s, c.name);
      return { req, build: () => (r ? { ok: true, name: c.name, ...r } : noResource(c.name)) };
    }
    case 'cordon':
    case 'uncordon': {
      const w = s.workers.get(c.worker);
      const known = w !== undefined || (c.op === 'uncordon' && s.cordons.has(c.worker));
      if (!known) return { req, build: () => noWorker(c.worker) };
      const on = c.op === 'cordon';
      if (on !== s.cordons.has(c.worker) || (!on && s.cordons.get(c.worker)?.draining)) {
        cordon(s, c.worker, on);
        events.push({ kind: on ? 'worker.cordoned' : 'worker.uncordoned', payload: { worker: c.worker } });
      }
      return { req, build: () => ({ ok: true, worker: c.worker, cordoned: on }) };
    }
    case 'drain': {
      if (!s.workers.has(c.worker)) return { req, build: () => noWorker(c.worker) };
      const { moves, remaining } = drainMoves(s, c.worker);
      if (!s.cordons.has(c.worker)) events.push({ kind: 'worker.cordoned', payload: { worker: c.worker } });
      cordon(s, c.worker, true, true, moves.length, c.deadlineMs);
      for (const m of moves) move(s, m.name, m.to, 'drain', c.deadlineMs);
      return { req, build: () => ({ ok: true, worker: c.worker, moved: moves.length, remaining: remaining.length }) };
    }
  }
}

/** planRebalance moves what one round allows, from the most to the least loaded workers. */
export function planRebalance(s: ClusterState, limits: RebalanceLimits): number {
  const moves = rebalanceMoves(s, limits);
  for (const m of moves) move(s, m.name, m.to, 'rebalance');
  return moves.length;
}

/** drained announces drains whose every move has finished: nothing of theirs runs on the drained worker any more. */
export function drained(s: ClusterState, events: PlannedEvent[]): void {
  for (const [id, c] of s.cordons) {
    if (!c.draining || s.leaving.has(id)) continue;
    const w = s.workers.get(id);
    const remaining = w ? [...w.names].filter((n) => !TERMINAL.has(s.resources.get(n)?.rec.state ?? '')).length : 0;
    cordon(s, id, true, false);
    events.push({ kind: 'worker.drained', payload: { worker: id, moved: c.moved ?? 0, remaining } });
  }
}
