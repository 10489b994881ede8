// Client requests in a batch: writes (add, delete, restart) with their
// outcomes remembered for re-sent copies, task reports, reads, and the fleet
// commands (fleet.ts). Each is answered once the batch is written; reads
// too, since only a written batch proves this leader still leads.

import { ConflictError, ErrorCode, NotFoundError } from '#protocol/errors.js';
import { LIST_PAGE_BYTES, LIST_PAGE_MAX, type Resource } from '#protocol/messages.js';
import type { ClientRequest, Command } from '#protocol/request.js';
import type { Outcome } from '#protocol/outcomes.js';
import type { ClusterState } from './state.js';
import { answerOf } from './dedupe-window.js';
import { planFleet } from './fleet.js';
import { report } from './reports.js';
import { add, remove, restart } from './resources.js';
import { addSharded, isSharded, removeSharded, restartSharded, shardReported, withShards } from './shards.js';
import { shardCount } from '#protocol/shards.js';
import { planApply } from './apply.js';
import { filteredPage, summary } from './list-filter.js';
import { hasFilter } from '#protocol/list-query.js';
import type { PlanContext, PlannedEvent, PlannedReply, RevisionOf, WireReply } from './batch.js';
import { planSchedule, viewOf } from './schedule-requests.js';

/** What the requests of one batch share: replies by request id, and outcomes by the name they describe. */
export interface RequestScope {
  inBatch: Map<string, PlannedReply>;
  outcomes: Map<string, Array<[string, Outcome]>>;
  events: PlannedEvent[];
}

export function planRequest(s: ClusterState, req: ClientRequest, ctx: PlanContext, scope: RequestScope): PlannedReply {
  const c = req.command;
  if (c.op === 'report') return planReport(s, req, c, ctx);
  if (c.op === 'cordon' || c.op === 'uncordon' || c.op === 'drain' || c.op === 'explain' || (c.op === 'add' && c.dryRun)) {
    return planFleet(s, req, c, scope.events);
  }
  if (c.op === 'apply' && c.dryRun) return planApply(s, req, c, ctx).reply;
  if (c.op !== 'add' && c.op !== 'delete' && c.op !== 'restart' && c.op !== 'schedule' && c.op !== 'apply') return planRead(s, req, c, ctx);
  // A re-sent request gets its first outcome, whether from this batch or an earlier one.
  const again = scope.inBatch.get(req.id);
  if (again) return { req, build: again.build };
  const known = s.outcomes.lookup(req.id);
  // Read at answer time: an outcome planned by an earlier batch has its revision once that batch is written.
  if (known) return { req, build: () => answerOf(s.outcomes.lookup(req.id) ?? known, (name) => s.view(name)) as WireReply };
  const { reply, outcome } = c.op === 'apply' ? applied(s, req, c, ctx) : planWrite(s, req, c, ctx);
  if (req.id) {
    scope.inBatch.set(req.id, reply);
    if (outcome) {
      scope.outcomes.set(outcome.name, [...(scope.outcomes.get(outcome.name) ?? []), [req.id, outcome.outcome]]);
      s.outcomes.planned(req.id, outcome.outcome, ctx.now);
    }
  }
  return reply;
}

/**
 * applied plans an apply. Its outcome is filed under a key no resource can
 * have (names never hold a colon), so it goes with the batch's last
 * transaction: an apply spans several, and is answered, or answered again,
 * only if all of them commit.
 */
function applied(s: ClusterState, req: ClientRequest, c: Extract<Command, { op: 'apply' }>, ctx: PlanContext): { reply: PlannedReply; outcome?: { name: string; outcome: Outcome } } {
  const { reply, outcome } = planApply(s, req, c, ctx);
  return { reply, ...(outcome ? { outcome: { name: `apply:${req.id}`, outcome } } : {}) };
}

const stamp = (r: Resource, rev: RevisionOf): Resource => ({ ...r, revision: rev(r.name) ?? r.revision });
const notFound = (name: string): WireReply => ({ ok: false, error: new NotFoundError(`no resource named ${name}`).toWire() });

function planWrite(
  s: ClusterState,
  req: ClientRequest,
  c: Extract<Command, { op: 'add' | 'delete' | 'restart' | 'schedule' }>,
  ctx: PlanContext,
): { reply: PlannedReply; outcome?: { name: string; outcome: Outcome } } {
  if (c.op === 'schedule') return planSchedule(s, req, c);
  if (c.op === 'restart') {
    const r = isShardedName(s, c.name) ? restartSharded(s, c.name) : restart(s, c.name);
    if (r === undefined) return { reply: { req, build: () => notFound(c.name) }, outcome: { name: c.name, outcome: { op: 'absent', name: c.name } } };
    if (typeof r === 'string') {
      const error = new ConflictError(`${c.name} is ${r}; only a completed or failed resource can be restarted`).toWire();
      return { reply: { req, build: () => ({ ok: false, error }) } };
    }
    const rec = s.resources.get(c.name)!.rec;
    return { reply: { req, build: (rev) => ({ ok: true, resource: stamp(r, rev) }) }, outcome: { name: c.name, outcome: { op: 'restart', rec } } };
  }
  if (c.op === 'add') {
    const created = shardCount(c.spec) !== undefined ? addSharded(s, c.name, c.spec, ctx) : add(s, c.name, c.spec, ctx);
    const e = s.resources.get(c.name)!;
    const r = withShards(s, e, viewOf(e, s.schedules.wall));
    // The state's own record (never mutated, only replaced), not a copy: the dedupe window keeps it for a minute.
    const rec = s.resources.get(c.name)!.rec;
    const reply: PlannedReply = { req, build: (rev) => ({ ok: true, created, resource: stamp(r, rev) }) };
    return { reply, outcome: { name: c.name, outcome: { op: 'add', created, rec } } };
  }
  const r = isShardedName(s, c.name) ? removeSharded(s, c.name) : remove(s, c.name);
  if (!r) return { reply: { req, build: () => notFound(c.name) }, outcome: { name: c.name, outcome: { op: 'absent', name: c.name } } };
  const { revision: _r, shards: _s, ...rec } = r;
  return { reply: { req, build: (rev) => ({ ok: true, resource: stamp(r, rev) }) }, outcome: { name: c.name, outcome: { op: 'delete', rec } } };
}

const isShardedName = (s: ClusterState, name: string): boolean => {
  const e = s.resources.get(name);
  return !!e && isSharded(e);
};

const OK = { ok: true as const };

/** planReport folds a worker's reports in; each is answered once what it changed is written. */
function planReport(s: ClusterState, req: ClientRequest, c: Extract<Command, { op: 'report' }>, ctx: PlanContext): PlannedReply {
  let unfenced = true;
  const results = c.reports.map((r) => {
    const o = report(s, c.worker, c.epoch, r, ctx);
    if (o.ok && r.type !== 'progress' && r.type !== 'activity') shardReported(s, r.name);
    // Activity, like progress, lives in memory only: completion itself is written, and waits for proof.
    if (!o.ok || (r.type !== 'started' && r.type !== 'progress' && r.type !== 'activity')) unfenced = false;
    // A wire error, not a NotOwnerError: no stack is captured per refused report, and a lost worker's are many.
    return o.ok ? OK : { ok: false as const, error: { code: ErrorCode.NOT_OWNER, message: o.message } };
  });
  return { req, build: () => ({ ok: true, results }), ...(unfenced ? { unfenced } : {}) };
}

function planRead(s: ClusterState, req: ClientRequest, c: Extract<Command, { op: 'get' | 'list' | 'status' }>, ctx: PlanContext): PlannedReply {
  switch (c.op) {
    case 'get': {
      const e = s.resources.get(c.name);
      const r = e && withShards(s, e, viewOf(e, s.schedules.wall));
      if (!r) return { req, build: () => notFound(c.name) };
      return { req, build: (rev) => ({ ok: true, resource: stamp(r, rev) }) };
    }
    case 'list': {
      const page = hasFilter(c) ? filteredPage(s, c) : s.page(c.after, c.limit ?? LIST_PAGE_MAX, LIST_PAGE_BYTES);
      page.resources = page.resources.map((r) => {
        const e = s.resources.get(r.name)!;
        return withShards(s, e, s.schedules.names.has(r.name) ? viewOf(e, s.schedules.wall) : r);
      });
      return {
        req,
        build: (rev) => ({ ok: true, resources: page.resources.map((r) => stamp(r, rev)), ...(page.next ? { next: page.next } : {}) }),
      };
    }
    case 'status': {
      const workers = s.loads();
      const pending = s.pending.size;
      const resources = summary(s);
      return { req, build: () => ({ ok: true, leader: ctx.leaderId, term: ctx.term, masters: ctx.members, workers, pending, resources }) };
    }
  }
}
