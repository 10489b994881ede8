// The fleet commands of a batch (cordon, uncordon, drain, explain, dry-run
// adds) and the rebalance round: plan.ts hands them here. Like plan, no I/O:
// they change the model and say how to answer once the batch is written.

import { NotFoundError } from '#protocol/errors.js';
import type { ClientRequest, Command } from '#protocol/request.js';
import type { ClusterState } from './model.js';
import { dryRun, drainMoves, explain, rebalanceMoves, type RebalanceLimits } from './fleet.js';
import type { PlannedEvent, Reply, WireReply } from './plan.js';

export type FleetCommand = Extract<Command, { op: 'cordon' | 'uncordon' | 'drain' | 'explain' }> | Extract<Command, { op: 'add' }>;

const noWorker = (id: string): WireReply => ({ ok: false, error: new NotFoundError(`no live worker ${id}`).toWire() });
const noResource = (name: string): WireReply => ({ ok: false, error: new NotFoundError(`no resource named ${name}`).toWire() });

export function planFleet(model: ClusterState, req: ClientRequest, c: FleetCommand, events: PlannedEvent[]): Reply {
  switch (c.op) {
    case 'add': {
      const r = dryRun(model, c.name, c.spec);
      return { req, build: () => ({ ok: true, dryRun: true, ...r }) };
    }
    case 'explain': {
      const r = explain(model, c.name);
      return { req, build: () => (r ? { ok: true, name: c.name, ...r } : noResource(c.name)) };
    }
    case 'cordon':
    case 'uncordon': {
      const w = model.workers.get(c.worker);
      const known = w !== undefined || (c.op === 'uncordon' && model.cordons.has(c.worker));
      if (!known) return { req, build: () => noWorker(c.worker) };
      const on = c.op === 'cordon';
      if (on !== model.cordons.has(c.worker) || (!on && model.cordons.get(c.worker)?.draining)) {
        model.cordon(c.worker, on);
        events.push({ kind: on ? 'worker.cordoned' : 'worker.uncordoned', payload: { worker: c.worker } });
      }
      return { req, build: () => ({ ok: true, worker: c.worker, cordoned: on }) };
    }
    case 'drain': {
      if (!model.workers.has(c.worker)) return { req, build: () => noWorker(c.worker) };
      const { moves, remaining } = drainMoves(model, c.worker);
      if (!model.cordons.has(c.worker)) events.push({ kind: 'worker.cordoned', payload: { worker: c.worker } });
      model.cordon(c.worker, true, true, moves.length, c.deadlineMs);
      for (const m of moves) model.move(m.name, m.to, 'drain', c.deadlineMs);
      return { req, build: () => ({ ok: true, worker: c.worker, moved: moves.length, remaining: remaining.length }) };
    }
  }
}

/** planRebalance moves what one round allows, from the most to the least loaded workers. */
export function planRebalance(model: ClusterState, limits: RebalanceLimits): number {
  const moves = rebalanceMoves(model, limits);
  for (const m of moves) model.move(m.name, m.to, 'rebalance');
  return moves.length;
}

/** drained announces drains whose every move has finished: nothing of theirs runs on the drained worker any more. */
export function drained(model: ClusterState, events: PlannedEvent[]): void {
  for (const [id, c] of model.cordons) {
    if (!c.draining || model.leaving.has(id)) continue;
    const w = model.workers.get(id);
    const remaining = w ? [...w.names].filter((n) => {
      const s = model.resources.get(n)?.rec.state;
      return s !== 'completed' && s !== 'failed';
    }).length : 0;
    model.cordon(id, true, false);
    events.push({ kind: 'worker.drained', payload: { worker: id, moved: c.moved ?? 0, remaining } });
  }
}
