// ClusterState is the leader's in-memory model of resources and live workers,
// and the planner that turns changes to it into etcd operations. It does no
// I/O, so it is unit-tested directly. Changes are applied optimistically;
// `flush` yields one unit of operations per touched resource (its resource,
// assignment and checkpoint keys always commit together), and `committed`
// stamps the revision once etcd has them. After any failed commit the leader
// throws the whole state away and reloads it from etcd.
//
// What a task reports is folded in here too (lifecycle.ts decides what a
// failure leads to). `running` and progress are kept in memory only, and
// written with the record whenever it is written for another reason: they
// are what the leader knows, not what must survive it (workers report again
// to a new leader).

import { v4 as uuidv4 } from 'uuid';
import { keys } from '#protocol/keys.js';
import { packed } from '#protocol/codec.js';
import { taskKindOf } from '#protocol/validate.js';
import { ResourceState, type Constraint, type Json, type MoveReason, type Resource, type Spec, type TaskReport, type WorkerLoad } from '#protocol/messages.js';
import { toResource, type StoredAssignment, type StoredCheckpoint, type StoredHandoff, type StoredResource } from '#protocol/stored.js';
import type { Op } from '#platform/ports.js';
import { choose, type Slot, type Want } from './placement.js';
import { removed, type AssignChange } from './mirror.js';
import { afterFailure } from './lifecycle.js';
import { FenceWaits } from './fence-waits.js';

export interface Assignment {
  worker: string;
  /** The worker incarnation (its lease id) this assignment was written for. */
  epoch: string;
  attempt: number;
  delayMs?: number;
  /**
   * The leader's clock time before which it must not start, when a worker
   * it was taken from may still run it; delayMs is what was left of that
   * wait when the batch was planned. Not stored: a new leader has delayMs.
   */
  notBefore?: number;
  checkpoint?: boolean;
  /** A handoff: not to be started until the previous owner has stopped. */
  hold?: boolean;
}

/** Handoff is a move in progress: the old owner may still run the task, checkpoint it and report it stopped. */
export interface Handoff {
  from: Assignment;
  reason: MoveReason;
  /** How long the old owner gets to say it stopped before it is fenced. */
  deadlineMs?: number;
}

/** Cordon is a worker's cordon as etcd keeps it under keys.cordon. */
export interface Cordon {
  draining: boolean;
  /** For a drain: how many moves it started, for the worker.drained event. */
  moved?: number;
  deadlineMs?: number;
}

export interface Entry {
  rec: StoredResource;
  revision: number;
  /** The assignment key as it is in etcd (or will be, once flushed). */
  assign: Assignment | undefined;
  /** The newest checkpoint seq accepted for the current attempt. */
  cpSeq?: number;
  handoff?: Handoff;
}

export class WorkerEntry implements Slot {
  readonly names = new Set<string>();
  cordoned = false;
  draining = false;
  constructor(
    readonly id: string,
    public capacity: number,
    public epoch: string,
    public kinds: ReadonlySet<string>,
    public labels: Readonly<Record<string, string>> = {},
  ) {}
  get assigned(): number {
    return this.names.size;
  }
}

/** What a name looked like in etcd before this batch touched it. */
interface Before {
  existed: boolean;
  /** The resource id it had: a name deleted and added again in one batch is a different resource. */
  id: string | undefined;
  assign: Assignment | undefined;
}

export interface Unit {
  name: string;
  ops: Op[];
  /** What its workers are told once it commits. */
  assigns: AssignChange[];
  /** Bytes of values this unit writes, to keep a transaction under etcd's request limit. */
  bytes: number;
}

/** Move records what a batch did to one resource's placement, for events. */
export type Move = { name: string; id: string; from: string | null; to: string | null; deleted: boolean; reason: MoveReason };

/** Lifecycle records what a batch did to one task's lifecycle, for events. */
export type Lifecycle =
  | { kind: 'completed'; name: string; id: string; worker: string }
  | { kind: 'failed'; name: string; id: string; worker: string; error: string; failures: number }
  | { kind: 'restarting'; name: string; id: string; worker: string; delayMs: number; attempt: number };

/** What a report got: accepted, or refused with a reason. */
export type ReportOutcome = { ok: true } | { ok: false; code: 'NOT_OWNER'; message: string };

/** Pending resources a batch may try to place, per resource its budget lets it touch. */
const SCAN_PER_BUDGET = 4;

const TERMINAL: ReadonlySet<string> = new Set([ResourceState.completed, ResourceState.failed]);

const sameAssign = (a: Assignment | undefined, b: Assignment | undefined): boolean =>
  a === b ||
  (!!a &&
    !!b &&
    a.worker === b.worker &&
    a.epoch === b.epoch &&
    a.attempt === b.attempt &&
    a.delayMs === b.delayMs &&
    a.checkpoint === b.checkpoint &&
    a.hold === b.hold);

/** Built only when refused: after a worker's lease expires, tens of thousands of its reports are. */
const refused = (worker: string, r: TaskReport): ReportOutcome => ({
  ok: false,
  code: 'NOT_OWNER',
  message: `${worker} does not run attempt ${r.attempt} of ${r.name} (${r.id})`,
});

const owns = (a: Assignment | undefined, worker: string, epoch: string, attempt: number): boolean =>
  !!a && a.worker === worker && a.epoch === epoch && a.attempt === attempt;

export class ClusterState {
  readonly resources = new Map<string, Entry>();
  readonly workers = new Map<string, WorkerEntry>();
  /** Resources that want a worker and have none. */
  readonly pending = new Set<string>();
  private readonly dirty = new Map<string, Before>();
  private readonly checkpoints = new Map<string, StoredCheckpoint>();
  /** Cordons as etcd has them (or will): by worker id, live or not, since a cordon outlives restarts. */
  readonly cordons = new Map<string, Cordon>();
  private readonly dirtyCordons = new Set<string>();
  /** Resources in a handoff, by the worker they are leaving. */
  readonly leaving = new Map<string, Set<string>>();
  /** Handoffs started or ended by this batch: the leader arms and disarms their deadlines. */
  handoffs: Array<{ name: string; from: Assignment; started: boolean; deadlineMs?: number }> = [];
  /** Removed resources whose checkpoint key must go too. */
  private readonly dropCheckpoints = new Set<string>();
  private orphans: Array<{ worker: string; name: string }> = [];
  /**
   * How many pending resources are still to be tried since something changed
   * that may let them be placed; Infinity asks for a whole pass.
   */
  private toTry = Infinity;
  /** Resources whose worker came back as a new incarnation, waiting for their new attempt there. */
  private readonly reattempt = new Set<string>();
  /** Resources whose assignment key a load found stale, waiting to be rewritten. */
  private readonly restamp = new Set<string>();
  /** Resources taken from a worker that may still run them: their next attempt waits. */
  private readonly fenceWaits = new FenceWaits();
  /** Most resources a batch touches before work that can wait (moves, new attempts) waits for the next one. */
  private budget = Infinity;
  /** This batch left such work for the next. */
  private cut = false;
  /** Names in order, rebuilt after adds and removes. */
  private sorted: string[] | undefined;
  moves: Move[] = [];
  lifecycle: Lifecycle[] = [];

  /**
   * @param term the fencing token of the leader that owns this model; every
   * record it writes carries it, so an audit can tell who wrote what.
   */
  constructor(
    private readonly term = 0,
    private readonly now: () => Date = () => new Date(),
    private readonly random: () => number = Math.random,
  ) {}

  /** beginBatch bounds what the batch about to be planned touches, so no batch holds the leader for long. */
  beginBatch(budget: number, now = 0): void {
    this.budget = budget;
    this.cut = false;
    this.fenceWaits.begin(now);
  }

  /** backlog says the last batch left work for the next: the leader plans another soon. */
  get backlog(): boolean {
    return this.cut;
  }

  private get spent(): boolean {
    return this.dirty.size >= this.budget;
  }

  // --- loading -----------------------------------------------------------

  loadWorker(id: string, capacity: number, epoch: string, kinds: Iterable<string>, labels: Record<string, string> = {}): void {
    const w = new WorkerEntry(id, capacity, epoch, new Set(kinds), labels);
    this.applyCordon(w);
    this.workers.set(id, w);
  }

  /** loadCordon records a cordon as etcd has it; call before loadWorker. */
  loadCordon(id: string, c: Cordon): void {
    this.cordons.set(id, c);
  }

  private applyCordon(w: WorkerEntry): void {
    const c = this.cordons.get(w.id);
    w.cordoned = c !== undefined;
    w.draining = c?.draining ?? false;
  }

  /** loadFencing records a revoked worker that may run its tasks until `until` (clock time); call before repair. */
  loadFencing(id: string, until: number): void {
    this.fenceWaits.note(id, until);
  }

  /** loadResource adds a resource as etcd has it; call after every loadWorker. */
  loadResource(rec: StoredResource, revision: number, assign: Assignment | undefined, handoff?: StoredHandoff): void {
    const e: Entry = { rec, revision, assign };
    this.resources.set(rec.name, e);
    if (handoff && assign) {
      e.assign = { ...assign, hold: true };
      this.beginHandoff(e, { worker: handoff.worker, epoch: handoff.epoch, attempt: handoff.attempt }, handoff.reason as MoveReason);
    }
    this.sorted = undefined;
    const w = rec.worker ? this.workers.get(rec.worker) : undefined;
    if (w) w.names.add(rec.name);
    else if (!TERMINAL.has(rec.state)) this.pending.add(rec.name);
  }

  // --- reads -------------------------------------------------------------

  view(name: string): Resource | undefined {
    const e = this.resources.get(name);
    return e && viewOf(e);
  }

  list(): Resource[] {
    return this.page(undefined, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER).resources;
  }

  /**
   * page lists resources in name order after `after`, at most `limit` of
   * them and stopping near `maxBytes` of JSON; `next` is set when more remain.
   */
  page(after: string | undefined, limit: number, maxBytes: number): { resources: Resource[]; next?: string } {
    const names = (this.sorted ??= [...this.resources.keys()].sort(byName));
    let i = 0;
    if (after !== undefined) {
      // First index whose name is greater than `after`.
      let hi = names.length;
      while (i < hi) {
        const mid = (i + hi) >> 1;
        if (names[mid]! <= after) i = mid + 1;
        else hi = mid;
      }
    }
    const out: Resource[] = [];
    let bytes = 0;
    for (; i < names.length && out.length < limit; i++) {
      const e = this.resources.get(names[i]!)!;
      bytes += 300 + e.rec.name.length + JSON.stringify(e.rec.spec).length + jsonSize(e.rec.result) + jsonSize(e.rec.progress);
      if (bytes > maxBytes && out.length > 0) break;
      out.push(viewOf(e));
    }
    return i < names.length ? { resources: out, next: out[out.length - 1]!.name } : { resources: out };
  }

  loads(): WorkerLoad[] {
    return [...this.workers.values()]
      .map((w) => ({
        id: w.id,
        capacity: w.capacity,
        resources: w.assigned,
        kinds: [...w.kinds].sort(),
        labels: { ...w.labels },
        cordoned: w.cordoned,
        draining: w.draining,
      }))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  // --- changes -----------------------------------------------------------

  private touch(name: string): void {
    if (this.dirty.has(name)) return;
    const e = this.resources.get(name);
    this.dirty.set(name, { existed: e !== undefined, id: e?.rec.id, assign: e?.assign && { ...e.assign } });
  }

  /**
   * place gives the resource its next attempt on the best worker for it (see
   * placement.ts), avoiding `avoid` when it can, or makes it pending with the
   * reason none fits. delayMs holds the start back (a restart's backoff).
   */
  private place(
    e: Entry,
    opts: {
      avoid?: ReadonlySet<string>;
      delayMs?: number;
      state?: ResourceState;
      to?: WorkerEntry;
      reason?: MoveReason;
      handoff?: boolean;
      deadlineMs?: number;
    } = {},
  ): void {
    const name = e.rec.name;
    this.touch(name);
    const from = e.rec.worker;
    const fromAssign = e.assign;
    if (from) this.free(from, name);
    this.pending.delete(name);
    this.endHandoff(e);
    const pick = opts.to ? { slot: opts.to } : choose(this.workers.values(), { ...wantOf(e.rec.spec), ...(opts.avoid ? { avoid: opts.avoid } : {}) });
    const to = 'slot' in pick ? (pick.slot as WorkerEntry) : undefined;
    if (to) {
      const attempt = e.rec.attempt + 1;
      const wait = this.fenceWaits.startAfter(name, opts.delayMs);
      const { reason: _r, delayMs: _d, ...rest } = e.rec;
      e.rec = { ...rest, worker: to.id, state: opts.state ?? ResourceState.starting, attempt, ...(wait.delayMs ? { delayMs: wait.delayMs } : {}) };
      // A live previous owner must stop before the next one starts.
      const hold = opts.handoff === true && fromAssign !== undefined;
      e.assign = { worker: to.id, epoch: to.epoch, attempt, ...wait, ...(e.rec.checkpoint ? { checkpoint: true } : {}), ...(hold ? { hold: true } : {}) };
      if (hold) this.beginHandoff(e, fromAssign!, opts.reason ?? 'rebalance', opts.deadlineMs);
      to.names.add(name);
    } else {
      const { delayMs: _d, ...rest } = e.rec;
      e.rec = { ...rest, worker: null, state: ResourceState.pending, reason: 'reason' in pick ? pick.reason : 'no worker' };
      e.assign = undefined;
      this.pending.add(name);
    }
    e.cpSeq = undefined;
    const moved = from !== (to?.id ?? null);
    if (moved || e.revision === 0) this.moves.push({ name, id: e.rec.id, from, to: to?.id ?? null, deleted: false, reason: opts.reason ?? 'lost' });
  }

  // --- handoffs ----------------------------------------------------------

  private beginHandoff(e: Entry, from: Assignment, reason: MoveReason, deadlineMs?: number): void {
    e.handoff = { from, reason, ...(deadlineMs !== undefined ? { deadlineMs } : {}) };
    const set = this.leaving.get(from.worker) ?? new Set<string>();
    set.add(e.rec.name);
    this.leaving.set(from.worker, set);
    this.handoffs.push({ name: e.rec.name, from, started: true, ...(deadlineMs !== undefined ? { deadlineMs } : {}) });
  }

  private endHandoff(e: Entry): void {
    const h = e.handoff;
    if (!h) return;
    e.handoff = undefined;
    const set = this.leaving.get(h.from.worker);
    set?.delete(e.rec.name);
    if (set?.size === 0) this.leaving.delete(h.from.worker);
    this.handoffs.push({ name: e.rec.name, from: h.from, started: false });
  }

  /** release lets the new owner start: the old one has stopped (or certainly will have, being fenced, after its fence wait). */
  release(name: string): void {
    const e = this.resources.get(name);
    if (!e?.handoff) return;
    this.endHandoff(e);
    if (e.assign?.hold) {
      this.touch(name);
      const { hold: _h, delayMs: _d, notBefore: _n, ...rest } = e.assign;
      e.assign = { ...rest, ...this.fenceWaits.startAfter(name, e.rec.delayMs) };
    }
  }

  /** move gives a resource's next attempt to `to`, stopping it on its current worker first (a handoff). */
  move(name: string, to: WorkerEntry, reason: MoveReason, deadlineMs?: number): void {
    const e = this.resources.get(name);
    if (!e) return;
    this.place(e, { to, reason, handoff: true, ...(deadlineMs !== undefined ? { deadlineMs } : {}) });
  }

  /** handoffFrom is the old owner of a resource in a handoff. */
  handoffFrom(name: string): Assignment | undefined {
    return this.resources.get(name)?.handoff?.from;
  }

  // --- cordons -----------------------------------------------------------

  /** cordon sets or clears a worker's cordon (and drain mark); it outlives the worker's restarts. */
  cordon(id: string, on: boolean, draining = false, moved?: number, deadlineMs?: number): void {
    if (on) this.cordons.set(id, { draining, ...(moved !== undefined ? { moved } : {}), ...(deadlineMs !== undefined ? { deadlineMs } : {}) });
    else this.cordons.delete(id);
    this.dirtyCordons.add(id);
    const w = this.workers.get(id);
    if (w) this.applyCordon(w);
    this.toTry = Infinity;
  }

  /** add creates the resource unless it exists; returns whether it did. */
  add(name: string, spec: Spec): boolean {
    if (this.resources.has(name)) return false;
    this.touch(name);
    const e: Entry = {
      rec: { name, id: uuidv4(), worker: null, spec, createdAt: this.now().toISOString(), state: ResourceState.pending, attempt: 0, failures: 0 },
      revision: 0,
      assign: undefined,
    };
    this.resources.set(name, e);
    this.sorted = undefined;
    this.place(e);
    return true;
  }

  /** remove deletes the resource (its checkpoint too); returns what it was, or undefined if unknown. */
  remove(name: string): Resource | undefined {
    const e = this.resources.get(name);
    if (!e) return undefined;
    this.touch(name);
    const view = viewOf(e);
    this.moves.push({ name, id: e.rec.id, from: e.rec.worker, to: null, deleted: true, reason: 'lost' });
    if (e.rec.worker) this.free(e.rec.worker, name);
    this.endHandoff(e);
    this.pending.delete(name);
    this.resources.delete(name);
    this.fenceWaits.drop(name);
    this.checkpoints.delete(name);
    if (e.rec.checkpoint) this.dropCheckpoints.add(name);
    this.sorted = undefined;
    return view;
  }

  /** restart runs a completed or failed resource again, from its checkpoint; undefined if unknown, the state if it is not terminal. */
  restart(name: string): Resource | ResourceState | undefined {
    const e = this.resources.get(name);
    if (!e) return undefined;
    if (!TERMINAL.has(e.rec.state)) return e.rec.state;
    const { result: _r, error: _e, failedOn: _f, ...rest } = e.rec;
    e.rec = { ...rest, failures: 0 };
    this.place(e);
    return viewOf(e);
  }

  private free(worker: string, name: string): void {
    const w = this.workers.get(worker);
    if (!w) return;
    w.names.delete(name);
    this.toTry = Infinity;
  }

  /** workerUp records a live worker; a new incarnation's resources start again there (a new attempt each). */
  workerUp(id: string, capacity: number, epoch: string, kinds: Iterable<string>, labels: Record<string, string> = {}): void {
    const w = this.workers.get(id);
    this.toTry = Infinity;
    if (!w) {
      const nw = new WorkerEntry(id, capacity, epoch, new Set(kinds), labels);
      this.applyCordon(nw);
      this.workers.set(id, nw);
      return this.placePending();
    }
    w.capacity = capacity;
    w.kinds = new Set(kinds);
    w.labels = labels;
    if (w.epoch === epoch) return this.placePending();
    // A new incarnation: the old one's lease is gone and it fenced itself, so
    // whatever was leaving it may start where it is going.
    for (const name of [...(this.leaving.get(id) ?? [])]) if (this.resources.get(name)?.handoff?.from.epoch !== epoch) this.release(name);
    w.epoch = epoch;
    for (const name of w.names) this.reattempt.add(name);
    this.reattempts();
    this.placePending();
  }

  /**
   * reattempts gives each resource whose worker came back as a new
   * incarnation its new attempt there, as far as the batch's budget goes.
   * What is left keeps its old assignment meanwhile: the new incarnation
   * ignores it, and the old one has fenced itself.
   */
  reattempts(): void {
    this.within(this.reattempt, (name) => {
      const e = this.resources.get(name);
      const w = e?.rec.worker ? this.workers.get(e.rec.worker) : undefined;
      // Moved, finished or deleted meanwhile, or already given one.
      if (!e || !w || e.assign?.worker !== w.id || e.assign.epoch === w.epoch) return;
      this.touch(name);
      const attempt = e.rec.attempt + 1;
      e.rec = { ...e.rec, attempt, state: ResourceState.starting };
      // Still held if it is coming from another worker that has not stopped it yet.
      e.assign = { worker: w.id, epoch: w.epoch, attempt, ...this.fenceWaits.startAfter(name), ...(e.rec.checkpoint ? { checkpoint: true } : {}), ...(e.handoff ? { hold: true } : {}) };
      e.cpSeq = undefined;
    });
  }

  /** within takes names off `queue` while the batch's budget lasts; what is left waits for the next batch. */
  private within(queue: Set<string>, each: (name: string) => void): void {
    for (const name of queue) {
      if (this.spent) return void (this.cut = true);
      queue.delete(name);
      each(name);
    }
  }

  /** markRunning notes what a worker says it runs: attempts it owns that it has started are running. */
  markRunning(worker: string, tasks: ReadonlyArray<{ name: string; id: string; attempt: number }>): void {
    for (const t of tasks) {
      const e = this.resources.get(t.name);
      const a = e?.assign;
      if (!e || !a || a.hold || e.rec.id !== t.id || a.worker !== worker || a.attempt !== t.attempt) continue;
      if (e.rec.state === ResourceState.starting || e.rec.state === ResourceState.restarting) e.rec = { ...e.rec, state: ResourceState.running };
    }
  }

  /**
   * workerDown forgets a worker and moves each of its resources: a new
   * attempt elsewhere, not a failure. If the worker may still run them until
   * `fencedBy` (we revoked it; it is fencing itself), they are written
   * elsewhere now and start when that has passed: the writes of a thousand
   * moves overlap the fence window instead of following it.
   */
  workerDown(id: string, fencedBy?: number): void {
    const wait = (name: string) => {
      if (fencedBy !== undefined) this.fenceWaits.hold(name, fencedBy);
    };
    const leaving = [...(this.leaving.get(id) ?? [])];
    // What was leaving it may start where it is going: its old owner is gone, or fenced by then.
    for (const name of leaving) {
      wait(name);
      this.release(name);
    }
    const w = this.workers.get(id);
    if (!w) return;
    this.workers.delete(id);
    for (const name of w.names) wait(name);
    // Placed as the batches' budgets allow (placePending): until then each
    // keeps its record and assignment, which the move rewrites.
    for (const name of w.names) this.pending.add(name);
    this.toTry = Infinity;
    this.placePending();
  }

  /**
   * placePending places every pending resource that some worker fits, when
   * anything changed that could allow it, as far as the batch's budget goes.
   * One whose worker is gone is written as pending if nothing fits. A batch
   * also tries at most SCAN_PER_BUDGET times its budget: after 88 of 100
   * workers were lost at 100k, 82k resources waited for room, and each batch
   * that tried them all held the leader for half a second. One that still
   * fits nowhere goes to the back, so the next batch goes on with the rest.
   */
  placePending(): void {
    let left = Math.min(this.toTry, this.pending.size);
    // What changes while we place asks for a pass of its own, next time.
    this.toTry = 0;
    let tries = 0;
    // No copy of the set (it can hold tens of thousands): place() deletes the
    // name, and adds it back, at the back, when a lost one is written pending.
    for (const name of this.pending) {
      if (left <= 0) return;
      if (this.spent || tries >= this.budget * SCAN_PER_BUDGET) {
        this.cut = true;
        this.toTry = Math.max(this.toTry, left);
        return;
      }
      tries++;
      left--;
      const e = this.resources.get(name)!;
      const lost = e.rec.worker !== null && !this.workers.has(e.rec.worker);
      const pick = choose(this.workers.values(), wantOf(e.rec.spec));
      if ('slot' in pick || lost) {
        this.place(e);
        continue;
      }
      if (e.rec.reason !== pick.reason) e.rec = { ...e.rec, reason: pick.reason };
      this.pending.delete(name);
      this.pending.add(name);
    }
  }

  // --- reports -----------------------------------------------------------

  /** report folds one task report from a worker incarnation into the model, if that incarnation runs that attempt. */
  report(worker: string, epoch: string, r: TaskReport): ReportOutcome {
    const e = this.resources.get(r.name);
    if (!e || e.rec.id !== r.id) return refused(worker, r);
    if (e.handoff && owns(e.handoff.from, worker, epoch, r.attempt)) return this.reportLeaving(e, worker, r);
    // A worker that is gone may still own assignments not yet moved (workerDown): it has fenced itself.
    if (!owns(e.assign, worker, epoch, r.attempt) || e.assign?.hold || !this.workers.has(worker)) return refused(worker, r);
    switch (r.type) {
      case 'stopped':
        break;
      case 'started':
        if (e.rec.state !== ResourceState.running) e.rec = { ...e.rec, state: ResourceState.running };
        break;
      case 'progress':
        e.rec = { ...e.rec, progress: r.progress };
        break;
      case 'checkpoint':
        if (r.seq <= (e.cpSeq ?? 0)) break; // a late duplicate: a newer one is already written
        e.cpSeq = r.seq;
        this.touch(r.name);
        this.checkpoints.set(r.name, { id: r.id, attempt: r.attempt, seq: r.seq, worker, state: r.state, at: this.now().toISOString() });
        if (!e.rec.checkpoint) e.rec = { ...e.rec, checkpoint: true };
        break;
      case 'completed':
        this.finish(e, worker, ResourceState.completed, r.result);
        this.lifecycle.push({ kind: 'completed', name: r.name, id: r.id, worker });
        break;
      case 'failed':
        this.fail(e, worker, r.error);
        break;
    }
    return { ok: true };
  }

  /**
   * reportLeaving takes what the old owner of a handoff says: its last
   * checkpoints count, and once it says it stopped (or ended on its own),
   * the new owner may start.
   */
  private reportLeaving(e: Entry, worker: string, r: TaskReport): ReportOutcome {
    switch (r.type) {
      case 'checkpoint':
        if (r.seq > (e.cpSeq ?? 0)) {
          e.cpSeq = r.seq;
          this.touch(r.name);
          this.checkpoints.set(r.name, { id: r.id, attempt: r.attempt, seq: r.seq, worker, state: r.state, at: this.now().toISOString() });
          if (!e.rec.checkpoint) e.rec = { ...e.rec, checkpoint: true };
          if (e.assign && !e.assign.checkpoint) e.assign = { ...e.assign, checkpoint: true };
        }
        break;
      case 'completed':
        // It finished before it heard of the move: done, and the new owner never starts.
        this.finish(e, e.rec.worker ?? worker, ResourceState.completed, r.result);
        this.lifecycle.push({ kind: 'completed', name: r.name, id: r.id, worker });
        break;
      case 'stopped':
      case 'failed':
        // Stopped for the move (a failure while stopping is the stop, not the task's fault).
        this.release(r.name);
        break;
      default:
        break;
    }
    return { ok: true };
  }

  private finish(e: Entry, worker: string, state: ResourceState, result?: Json): void {
    this.touch(e.rec.name);
    this.pending.delete(e.rec.name);
    this.free(worker, e.rec.name);
    this.endHandoff(e);
    const { delayMs: _d, reason: _r, ...rest } = e.rec;
    e.rec = { ...rest, worker: null, state, ...(result !== undefined ? { result } : {}) };
    e.assign = undefined;
  }

  private fail(e: Entry, worker: string, error: string): void {
    const failures = e.rec.failures + 1;
    const failedOn = [...new Set([...(e.rec.failedOn ?? []), worker])];
    const next = afterFailure(e.rec.spec, failures, this.random);
    const base = { name: e.rec.name, id: e.rec.id, worker };
    e.rec = { ...e.rec, failures, failedOn, error };
    this.lifecycle.push({ kind: 'failed', ...base, error, failures });
    if (next.give) return this.finish(e, worker, ResourceState.failed);
    // The second and later failures go elsewhere if the policy says so and there is an elsewhere.
    const avoid = next.reschedule ? new Set(failedOn) : undefined;
    this.place(e, { ...(avoid ? { avoid } : {}), delayMs: next.delayMs, state: ResourceState.restarting, reason: 'reschedule' });
    if (e.rec.worker) this.lifecycle.push({ kind: 'restarting', ...base, worker: e.rec.worker, delayMs: next.delayMs, attempt: e.rec.attempt });
  }

  // --- repair and flush --------------------------------------------------

  /**
   * repair makes etcd agree with the model after a load: assignment keys that
   * are missing, stale (old epoch, wrong worker) or orphaned get rewritten or
   * deleted, and resources of workers that died while no leader watched get
   * placed again, by the next batches as far as their budgets go (after
   * every worker lost its lease at once, that is every resource).
   */
  repair(orphanAssignments: Array<{ worker: string; name: string }>): void {
    for (const e of this.resources.values()) {
      // A handoff whose old owner is gone (or is a later incarnation) may go
      // on: the old attempt has stopped, or will have once a revoked owner's
      // fence window has passed.
      const from = e.handoff?.from;
      if (from && this.workers.get(from.worker)?.epoch !== from.epoch) {
        this.fenceWaits.holdFor(e.rec.name, from.worker);
        this.release(e.rec.name);
      }
      if (e.rec.worker && !this.workers.has(e.rec.worker)) {
        this.fenceWaits.holdFor(e.rec.name, e.rec.worker);
        // A new attempt elsewhere, or pending if nothing fits (placePending).
        this.pending.add(e.rec.name);
        this.toTry = Infinity;
      } else if (!sameAssign(this.wanted(e), e.assign)) this.restamp.add(e.rec.name);
    }
    this.orphans.push(...orphanAssignments);
  }

  /** restamps rewrites the assignments a load found stale, as far as the batch's budget goes. */
  restamps(): void {
    this.within(this.restamp, (name) => {
      const e = this.resources.get(name);
      // Moved or deleted since, or its worker is gone (placePending has it then).
      if (!e || (e.rec.worker && !this.workers.has(e.rec.worker))) return;
      const want = this.wanted(e);
      if (sameAssign(want, e.assign)) return;
      this.touch(name);
      e.assign = want;
    });
  }

  /** wanted is the assignment key a resource's record calls for, on its worker's current incarnation. */
  private wanted(e: Entry): Assignment | undefined {
    const w = e.rec.worker ? this.workers.get(e.rec.worker) : undefined;
    return (
      w && {
        worker: w.id,
        epoch: w.epoch,
        attempt: e.rec.attempt,
        ...(e.rec.delayMs ? { delayMs: e.rec.delayMs } : {}),
        ...(e.rec.checkpoint ? { checkpoint: true } : {}),
        ...(e.handoff ? { hold: true } : {}),
      }
    );
  }

  get hasChanges(): boolean {
    return this.dirty.size > 0 || this.orphans.length > 0;
  }

  /** flush returns the operations that make etcd match the model, one unit per resource. */
  flush(): Unit[] {
    const units: Unit[] = [];
    for (const [name, before] of this.dirty) {
      const e = this.resources.get(name);
      const ops: Op[] = [];
      const assigns: AssignChange[] = [];
      if (e) ops.push({ put: keys.resource(name), value: packed.encode(recordValue(e, this.term)) });
      else if (before.existed) ops.push({ del: keys.resource(name) });
      const was = before.assign;
      const now = e?.assign;
      if (was && was.worker !== now?.worker) {
        ops.push({ del: keys.assignment(was.worker, name) });
        assigns.push(removed(was.worker, name, before.id, was.attempt, was.epoch));
      }
      if (now && (!sameAssign(was, now) || before.id !== e!.rec.id)) {
        const value = assignmentValue(e!, now, this.term);
        ops.push({ put: keys.assignment(now.worker, name), value: packed.encode(value) });
        const { epoch, term: _term, ...task } = value;
        assigns.push({ type: 'put', worker: now.worker, task, epoch, ...(now.notBefore !== undefined ? { notBefore: now.notBefore } : {}) });
      }
      const cp = this.checkpoints.get(name);
      if (cp) ops.push({ put: keys.checkpoint(name), value: packed.encode(cp) });
      else if (!e && this.dropCheckpoints.has(name)) ops.push({ del: keys.checkpoint(name) });
      if (ops.length > 0) units.push({ name, ops, assigns, bytes: ops.reduce((n, op) => n + ('put' in op ? op.value.byteLength + op.put.length : op.del.length), 0) });
    }
    for (const id of this.dirtyCordons) {
      const c = this.cordons.get(id);
      const key = keys.cordon(id);
      units.push(c ? { name: `cordon:${id}`, ops: [{ put: key, value: packed.encode(c) }], assigns: [], bytes: key.length + 16 } : { name: `cordon:${id}`, ops: [{ del: key }], assigns: [], bytes: key.length });
    }
    this.dirtyCordons.clear();
    // An orphan key that this flush writes anyway needs no delete (and etcd
    // rejects a transaction that names one key twice).
    const written = new Set(units.flatMap((u) => u.ops.map((op) => ('put' in op ? op.put : op.del))));
    for (const o of this.orphans.splice(0)) {
      const key = keys.assignment(o.worker, o.name);
      if (!written.has(key)) units.push({ name: o.name, ops: [{ del: key }], assigns: [removed(o.worker, o.name)], bytes: key.length });
    }
    this.dirty.clear();
    this.checkpoints.clear();
    this.dropCheckpoints.clear();
    return units;
  }

  /** assignedTask is a resource's assignment as its worker is told it. */
  assignedTask(name: string): AssignChange | undefined {
    const e = this.resources.get(name);
    if (!e?.assign) return undefined;
    const { epoch, term: _term, ...task } = assignmentValue(e, e.assign, this.term);
    return { type: 'put', worker: e.assign.worker, task, epoch };
  }

  /** committed stamps the revision etcd gave the units' resources. */
  committed(names: Iterable<string>, revision: number): void {
    for (const name of names) {
      const e = this.resources.get(name);
      if (e) e.revision = revision;
    }
  }

  takeMoves(): Move[] {
    const m = this.moves;
    this.moves = [];
    return m;
  }

  takeHandoffs(): ClusterState['handoffs'] {
    const h = this.handoffs;
    this.handoffs = [];
    return h;
  }

  takeLifecycle(): Lifecycle[] {
    const l = this.lifecycle;
    this.lifecycle = [];
    return l;
  }
}

function assignmentValue(e: Entry, a: Assignment, term: number): StoredAssignment {
  const { name, id, spec, createdAt } = e.rec;
  return {
    name, id, worker: a.worker, spec, createdAt, attempt: a.attempt,
    ...(a.delayMs ? { delayMs: a.delayMs } : {}),
    ...(a.checkpoint ? { checkpoint: true } : {}),
    ...(a.hold ? { hold: true } : {}),
    epoch: a.epoch, term,
  };
}

/** recordValue is what etcd keeps for an entry: the record, who wrote it, and the bookkeeping a new leader needs. */
function recordValue(e: Entry, term: number): StoredResource & { term: number; epoch?: string; handoff?: StoredHandoff } {
  const h = e.handoff;
  return {
    ...e.rec,
    term,
    ...(e.assign ? { epoch: e.assign.epoch } : {}),
    ...(h ? { handoff: { worker: h.from.worker, epoch: h.from.epoch, attempt: h.from.attempt, reason: h.reason } } : {}),
  };
}

/** wantOf is what placement needs of a spec: its kind and its label rules. */
export function wantOf(spec: Spec): Want {
  return {
    kind: taskKindOf(spec),
    ...(Array.isArray(spec.constraints) ? { constraints: spec.constraints as unknown as Constraint[] } : {}),
    ...(Array.isArray(spec.prefer) ? { prefer: spec.prefer as unknown as Constraint[] } : {}),
  };
}

function viewOf(e: Entry): Resource {
  return toResource(e.rec, e.revision);
}

function jsonSize(v: unknown): number {
  return v === undefined ? 0 : JSON.stringify(v).length;
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * chunk packs units into transactions of at most maxOps operations and
 * maxBytes of values, never splitting a unit.
 */
export function chunk(units: Unit[], maxOps: number, maxBytes = Number.MAX_SAFE_INTEGER): Unit[][] {
  const out: Unit[][] = [];
  let cur: Unit[] = [];
  let n = 0;
  let bytes = 0;
  for (const u of units) {
    if ((n + u.ops.length > maxOps || bytes + u.bytes > maxBytes) && cur.length > 0) {
      out.push(cur);
      cur = [];
      n = 0;
      bytes = 0;
    }
    cur.push(u);
    n += u.ops.length;
    bytes += u.bytes;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}
