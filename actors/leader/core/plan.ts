// plan is the leader's decision for one batch: given the state and what
// arrived (client commands, worker changes), it applies the rules and returns
// the one Plan: what to write, how to answer each request once written, what
// to announce, which handoffs started or ended, and whether work is left for
// the next batch. It does no I/O, reads no clock and makes no ids (the Tick
// in ctx brings them), so it is unit-tested directly; the Leader feeds it,
// and the shell encodes and commits what it returns.
//
// The state is updated in place, optimistically: if the writes fail, the
// leader throws the state away and reloads it from etcd.

import type { ClusterState } from './state.js';
import type { Move, TaskChange } from './change-log.js';
import type { Input, Plan, PlanContext, PlannedEvent, PlannedReply } from './batch.js';
import { drained, planRebalance } from './fleet.js';
import { release } from './handoffs.js';
import { placePending } from './placement.js';
import { restamps } from './repair.js';
import { planRequest, type RequestScope } from './requests.js';
import { markRunning, reattempts, workerDown, workerUp } from './workers.js';
import { checkShards, foldTouched, queuesAnswered } from './shards.js';
import { fireSchedules } from './schedules.js';

/**
 * Most resources one batch touches before work that can wait (moving a lost
 * worker's resources, new attempts for a worker that came back, placing
 * pending ones) is left to the next batch: a batch holds the leader's event
 * loop, its lease keepalives included, so it must stay short however much
 * work a mass failure leaves.
 */
export const BATCH_BUDGET = 2000;

export function plan(s: ClusterState, batch: readonly Input[], ctx: PlanContext): Plan {
  s.begin(ctx.budget ?? BATCH_BUDGET, ctx.now, ctx.backlog);
  s.schedules.begin(Date.parse(ctx.wall));
  const replies: PlannedReply[] = [];
  const events: PlannedEvent[] = [];
  const scope: RequestScope = { inBatch: new Map(), outcomes: new Map(), events };
  for (const m of batch) {
    switch (m.kind) {
      case 'client':
        replies.push(planRequest(s, m.req, ctx, scope));
        break;
      case 'worker-up':
        if (!s.workers.has(m.id)) events.push({ kind: 'worker.joined', payload: { worker: m.id, capacity: m.capacity } });
        workerUp(s, m.id, m.capacity, m.epoch, m.kinds, m.labels);
        break;
      case 'worker-down':
        if (s.workers.has(m.id)) events.push({ kind: 'worker.lost', payload: { worker: m.id } });
        workerDown(s, m.id, m.fencedBy);
        break;
      case 'rebalance':
        planRebalance(s, m.limits);
        break;
      case 'release':
        if (s.handoffFrom(m.name)?.attempt === m.attempt) release(s, m.name);
        break;
      case 'running':
        markRunning(s, m.worker, m.tasks);
        break;
      case 'reconcile':
      case 'tick':
        break;
      case 'shard-queues':
        queuesAnswered(s, m.name, m.id, m.token, m.queued);
        break;
    }
  }
  fireSchedules(s);
  restamps(s);
  reattempts(s);
  placePending(s);
  drained(s, events);
  const backlogTouched = s.backlogTouched;
  foldTouched(s);
  const shardProbes = checkShards(s);
  const shardDrops = s.shardDrops;
  s.shardDrops = [];
  const { moves, tasks, handoffs, ...writes } = s.takeChanges();
  events.push(...announce(moves), ...tasks.map(taskEvent), ...s.schedules.takeEvents());
  const wakeAt = s.schedules.wakeAt;
  return { writes, outcomes: scope.outcomes, replies, events, handoffs, backlog: s.cut, backlogTouched, shardProbes, shardDrops, ...(wakeAt !== undefined ? { wakeAt } : {}) };
}

function taskEvent(t: TaskChange): PlannedEvent {
  switch (t.kind) {
    case 'completed':
      return { kind: 'task.completed', payload: { name: t.name, id: t.id, worker: t.worker } };
    case 'failed':
      return { kind: 'task.failed', payload: { name: t.name, id: t.id, worker: t.worker, error: t.error, failures: t.failures } };
    case 'restarting':
      return { kind: 'task.restarting', payload: { name: t.name, id: t.id, worker: t.worker, delayMs: t.delayMs, attempt: t.attempt } };
  }
}

/** announce turns what a batch did to placements into events. */
function announce(moves: readonly Move[]): PlannedEvent[] {
  return moves.map((m): PlannedEvent => {
    const { name, id } = m;
    if (m.deleted) return { kind: 'resource.deleted', payload: { name, id, worker: m.from } };
    if (m.from && m.from !== m.to) return { kind: 'resource.moved', payload: { name, id, from: m.from, to: m.to, reason: m.reason } };
    if (m.to) return { kind: 'resource.placed', payload: { name, id, worker: m.to } };
    return { kind: 'resource.pending', payload: { name, id } };
  });
}
