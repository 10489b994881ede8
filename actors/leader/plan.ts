// plan is the leader's decision for one batch: given the model and what
// arrived (client commands, worker changes), it updates the model and says
// what to write, how to answer each request once written, and what to
// announce. It does no I/O and reads no clock, so it is unit-tested directly
// (test/unit/plan.test.ts); the Leader actor feeds it and the Committer
// writes what it returns.
//
// The model is updated in place, optimistically: if the writes fail, the
// leader throws the model away and reloads it from etcd.

import { ConflictError, ErrorCode, NotFoundError } from '#protocol/errors.js';
import { LIST_PAGE_BYTES, LIST_PAGE_MAX, type Resource } from '#protocol/messages.js';
import type { EventKind, EventPayloads } from '#protocol/events.js';
import type { ClientRequest, Command } from '#protocol/request.js';
import { MAX_TXN_OPS, type Op } from '#platform/ports.js';
import { chunk, type ClusterState, type Lifecycle, type Move } from './model.js';
import type { AssignChange } from './mirror.js';
import { answerOf, type Dedupe, type Outcome } from './dedupe.js';
import { drained, planFleet, planRebalance } from './plan-fleet.js';
import type { RebalanceLimits } from './fleet.js';

/** Input is one thing a batch handles; the Leader turns watch events and client messages into these. */
export type Input =
  | { kind: 'client'; req: ClientRequest }
  | { kind: 'worker-up'; id: string; capacity: number; epoch: string; kinds: string[]; labels: Record<string, string> }
  /** Time for a rebalance round (the leader paces them). */
  | { kind: 'rebalance'; limits: RebalanceLimits }
  /** A handoff's old owner has certainly stopped (it is fenced or gone): let the new owner start. */
  | { kind: 'release'; name: string; attempt: number }
  /** What a worker says it runs (asked after a load, since "running" is known only in memory). */
  | { kind: 'running'; worker: string; tasks: Array<{ name: string; id: string; attempt: number }> }
  /**
   * The worker's lease is gone: its work moves now. When we revoked it
   * ourselves it may still run its tasks until fencedBy (clock time), and
   * its work starts elsewhere only after that.
   */
  | { kind: 'worker-down'; id: string; fencedBy?: number }
  /** Nothing to do but repair and place what is pending (after a load). */
  | { kind: 'reconcile' };

/** revisionOf gives a touched name's commit revision, once committed. */
export type RevisionOf = (name: string) => number | undefined;

export interface Reply {
  req: ClientRequest;
  build: (revisionOf: RevisionOf) => WireReply;
  /**
   * The answer may go out without proof that we still lead: it changes
   * nothing a deposed leader could get wrong. Only accepted start and
   * progress reports, which live in the leader's memory alone: an ack from a
   * deposed leader leaves the task running, which the real leader governs
   * through assignments anyway. A refusal stops a task, so it waits for
   * proof like everything else.
   */
  unfenced?: boolean;
}
export type WireReply = { ok: true; [k: string]: unknown } | { ok: false; error: { code: string; message: string } };

export interface Txn {
  /** Resources this transaction writes; they take its revision. */
  names: string[];
  ops: Op[];
  /** Write outcomes it records, by request id, for re-sent requests. */
  entries: Array<[string, Outcome]>;
  /** What workers are told once it commits. */
  assigns: AssignChange[];
}

export type PlannedEvent = { [K in EventKind]: { kind: K; payload: EventPayloads[K] } }[EventKind];

export interface Plan {
  /** In commit order; empty only when the batch needs no proof of leadership either. */
  txns: Txn[];
  replies: Reply[];
  events: PlannedEvent[];
}

export interface PlanContext {
  leaderId: string;
  /** The leader's term (fencing token). */
  term: number;
  /** Every master in the election, leader first. */
  members: string[];
  /** Overrides BATCH_BUDGET (tests). */
  budget?: number;
  /** The leader's clock (clock.now()) as the batch is planned: fence waits count from it. */
  now?: number;
}

/** Per transaction, one op is kept for the dedupe record and one for the commit chain. */
const OPS_PER_TXN = MAX_TXN_OPS - 2;
/** etcd refuses requests over 1.5 MiB; checkpoints can be 64 KiB each. */
const BYTES_PER_TXN = 1024 * 1024;

/**
 * Most resources one batch touches before work that can wait (moving a lost
 * worker's resources, new attempts for a worker that came back, placing
 * pending ones) is left to the next batch: when every worker of a 2-core
 * machine lost its lease at once, one batch re-placed 36k resources and held
 * the leader for seconds, past its own lease.
 */
export const BATCH_BUDGET = 2000;

export function plan(model: ClusterState, dedupe: Dedupe, batch: readonly Input[], ctx: PlanContext): Plan {
  model.beginBatch(ctx.budget ?? BATCH_BUDGET, ctx.now ?? 0);
  const replies: Reply[] = [];
  const events: PlannedEvent[] = [];
  const outcomes = new Map<string, Array<[string, Outcome]>>();
  const inBatch = new Map<string, Reply>();
  for (const m of batch) {
    switch (m.kind) {
      case 'client':
        replies.push(planRequest(model, dedupe, m.req, ctx, inBatch, outcomes, events));
        break;
      case 'worker-up':
        if (!model.workers.has(m.id)) events.push({ kind: 'worker.joined', payload: { worker: m.id, capacity: m.capacity } });
        model.workerUp(m.id, m.capacity, m.epoch, m.kinds, m.labels);
        break;
      case 'worker-down':
        if (model.workers.has(m.id)) events.push({ kind: 'worker.lost', payload: { worker: m.id } });
        model.workerDown(m.id, m.fencedBy);
        break;
      case 'rebalance':
        planRebalance(model, m.limits);
        break;
      case 'release':
        if (model.handoffFrom(m.name)?.attempt === m.attempt) model.release(m.name);
        break;
      case 'running':
        model.markRunning(m.worker, m.tasks);
        break;
      case 'reconcile':
        break;
    }
  }
  model.restamps();
  model.reattempts();
  model.placePending();
  drained(model, events);
  const units = model.flush();
  events.push(...announce(model.takeMoves()), ...model.takeLifecycle().map(lifecycleEvent));
  // Outcomes that wrote nothing ("exists", NOT_FOUND) are recorded too, with
  // the batch's last transaction (in one of their own if it has none): a
  // late copy must get them again, from this leader or the next.
  const written = new Set(units.map((u) => u.name));
  const unwritten = [...outcomes].flatMap(([name, es]) => (written.has(name) ? [] : es));
  const chunks = chunk(units, OPS_PER_TXN, BYTES_PER_TXN);
  const txns: Txn[] = chunks.map((t, i) => {
    const ops = t.flatMap((u) => u.ops);
    const entries = [...t.flatMap((u) => outcomes.get(u.name) ?? []), ...(i === chunks.length - 1 ? unwritten : [])];
    // The outcomes commit with the writes they describe, or not at all.
    if (entries.length > 0) ops.push(dedupe.op(entries));
    return { names: t.map((u) => u.name), ops, entries, assigns: t.flatMap((u) => u.assigns) };
  });
  if (chunks.length === 0 && unwritten.length > 0) txns.push({ names: [], ops: [dedupe.op(unwritten)], entries: unwritten, assigns: [] });
  // Reads are answered only after a fenced transaction proves we still lead.
  if (txns.length === 0 && replies.some((r) => !r.unfenced)) txns.push({ names: [], ops: [], entries: [], assigns: [] });
  return { txns, replies, events };
}

function planRequest(
  model: ClusterState,
  dedupe: Dedupe,
  req: ClientRequest,
  ctx: PlanContext,
  inBatch: Map<string, Reply>,
  outcomes: Map<string, Array<[string, Outcome]>>,
  events: PlannedEvent[],
): Reply {
  const c = req.command;
  if (c.op === 'report') return planReport(model, req, c);
  if (c.op === 'cordon' || c.op === 'uncordon' || c.op === 'drain' || c.op === 'explain' || (c.op === 'add' && c.dryRun)) {
    return planFleet(model, req, c, events);
  }
  if (c.op !== 'add' && c.op !== 'delete' && c.op !== 'restart') return planRead(model, req, c, ctx);
  // A re-sent request gets its first outcome, whether from this batch or an earlier one.
  const again = inBatch.get(req.id);
  if (again) return { req, build: again.build };
  const known = dedupe.lookup(req.id);
  // Read at answer time: an outcome planned by an earlier batch has its revision once that batch is written.
  if (known) return { req, build: () => answerOf(dedupe.lookup(req.id) ?? known, (name) => model.view(name)) as WireReply };
  const { reply, outcome } = planWrite(model, req, c);
  if (req.id) {
    inBatch.set(req.id, reply);
    if (outcome) {
      outcomes.set(outcome.name, [...(outcomes.get(outcome.name) ?? []), [req.id, outcome.outcome]]);
      dedupe.planned(req.id, outcome.outcome);
    }
  }
  return reply;
}

const stamp = (r: Resource, rev: RevisionOf): Resource => ({ ...r, revision: rev(r.name) ?? r.revision });
const notFound = (name: string): WireReply => ({ ok: false, error: new NotFoundError(`no resource named ${name}`).toWire() });

function planWrite(
  model: ClusterState,
  req: ClientRequest,
  c: Extract<Command, { op: 'add' | 'delete' | 'restart' }>,
): { reply: Reply; outcome?: { name: string; outcome: Outcome } } {
  if (c.op === 'restart') {
    const r = model.restart(c.name);
    if (r === undefined) return { reply: { req, build: () => notFound(c.name) }, outcome: { name: c.name, outcome: { op: 'absent', name: c.name } } };
    if (typeof r === 'string') {
      const error = new ConflictError(`${c.name} is ${r}; only a completed or failed resource can be restarted`).toWire();
      return { reply: { req, build: () => ({ ok: false, error }) } };
    }
    const rec = model.resources.get(c.name)!.rec;
    return { reply: { req, build: (rev) => ({ ok: true, resource: stamp(r, rev) }) }, outcome: { name: c.name, outcome: { op: 'restart', rec } } };
  }
  if (c.op === 'add') {
    const created = model.add(c.name, c.spec);
    const r = model.view(c.name)!;
    // The model's own record (never mutated, only replaced), not a copy: dedupe keeps it for a minute.
    const rec = model.resources.get(c.name)!.rec;
    const reply: Reply = { req, build: (rev) => ({ ok: true, created, resource: stamp(r, rev) }) };
    return { reply, outcome: { name: c.name, outcome: { op: 'add', created, rec } } };
  }
  const r = model.remove(c.name);
  if (!r) return { reply: { req, build: () => notFound(c.name) }, outcome: { name: c.name, outcome: { op: 'absent', name: c.name } } };
  const { revision: _r, ...rec } = r;
  return { reply: { req, build: (rev) => ({ ok: true, resource: stamp(r, rev) }) }, outcome: { name: c.name, outcome: { op: 'delete', rec } } };
}

const OK = { ok: true as const };

/** planReport folds a worker's reports in; each is answered once what it changed is written. */
function planReport(model: ClusterState, req: ClientRequest, c: Extract<Command, { op: 'report' }>): Reply {
  let unfenced = true;
  const results = c.reports.map((r) => {
    const o = model.report(c.worker, c.epoch, r);
    if (!o.ok || (r.type !== 'started' && r.type !== 'progress')) unfenced = false;
    // A wire error, not a NotOwnerError: capturing a stack per refused report cost seconds when a worker's lease expired.
    return o.ok ? OK : { ok: false as const, error: { code: ErrorCode.NOT_OWNER, message: o.message } };
  });
  return { req, build: () => ({ ok: true, results }), ...(unfenced ? { unfenced } : {}) };
}

function planRead(
  model: ClusterState,
  req: ClientRequest,
  c: Extract<Command, { op: 'get' | 'list' | 'status' }>,
  ctx: PlanContext,
): Reply {
  switch (c.op) {
    case 'get': {
      const r = model.view(c.name);
      if (!r) return { req, build: () => notFound(c.name) };
      return { req, build: (rev) => ({ ok: true, resource: stamp(r, rev) }) };
    }
    case 'list': {
      const page = model.page(c.after, c.limit ?? LIST_PAGE_MAX, LIST_PAGE_BYTES);
      return {
        req,
        build: (rev) => ({ ok: true, resources: page.resources.map((r) => stamp(r, rev)), ...(page.next ? { next: page.next } : {}) }),
      };
    }
    case 'status': {
      const workers = model.loads();
      const pending = model.pending.size;
      return { req, build: () => ({ ok: true, leader: ctx.leaderId, term: ctx.term, masters: ctx.members, workers, pending }) };
    }
  }
}

function lifecycleEvent(l: Lifecycle): PlannedEvent {
  switch (l.kind) {
    case 'completed':
      return { kind: 'task.completed', payload: { name: l.name, id: l.id, worker: l.worker } };
    case 'failed':
      return { kind: 'task.failed', payload: { name: l.name, id: l.id, worker: l.worker, error: l.error, failures: l.failures } };
    case 'restarting':
      return { kind: 'task.restarting', payload: { name: l.name, id: l.id, worker: l.worker, delayMs: l.delayMs, attempt: l.attempt } };
  }
}

/** announce turns what a batch did to placements into events. */
export function announce(moves: readonly Move[]): PlannedEvent[] {
  return moves.map((m): PlannedEvent => {
    const { name, id } = m;
    if (m.deleted) return { kind: 'resource.deleted', payload: { name, id, worker: m.from } };
    if (m.from && m.from !== m.to) return { kind: 'resource.moved', payload: { name, id, from: m.from, to: m.to, reason: m.reason } };
    if (m.to) return { kind: 'resource.placed', payload: { name, id, worker: m.to } };
    return { kind: 'resource.pending', payload: { name, id } };
  });
}
