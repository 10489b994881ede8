// Leader: the one actor that changes cluster state. It exists only while this
// master leads. It loads workers, resources and assignments at one etcd
// revision, then serves from its mailbox a batch at a time: plan the batch
// (core/plan.ts), encode it (encode.ts), write it (committer.ts), and only
// then answer each request (replies.ts) and announce what changed (group
// commit); core/README.md walks the loop. Forwarded requests reach its
// mailbox straight from master.leader.<id>. Workers hear of their
// assignments from it too, after each commit (assign-publisher.ts).

import { v4 as uuidv4 } from 'uuid';
import { keys } from '#protocol/keys.js';
import { subjects } from '#protocol/subjects.js';
import { InternalError, NotLeaderError, toWire, UnavailableError } from '#protocol/errors.js';
import { forwardedSubject, ForeignReplyError, parseRequest, requestType, type ClientRequest } from '#protocol/request.js';
import { Actor, ActorStatus } from '#platform/actor.js';
import { respondError } from '#platform/nats/bus.js';
import { answerPing, isPing, type Prober } from '#platform/nats/prober.js';
import { publishEvent } from '#platform/nats/events.js';
import { ChainBrokenError, type Bus, type Guard, type Store, type WatchEvent } from '#platform/ports.js';
import type { Clock, Timer } from '#platform/clock.js';
import type { Logger } from '#platform/log.js';
import { OK_CODE, type GafferMetrics } from '#platform/metrics.js';
import { ClusterState } from './core/state.js';
import { plan } from './core/plan.js';
import type { Input, Plan, PlanContext } from './core/batch.js';
import { HandoffDeadlines } from './handoff-deadlines.js';
import { askRunning } from './ask-running.js';
import { DedupeLease } from './dedupe-lease.js';
import { buildCluster, loadCluster, type ClusterRead } from './loader.js';
import { WorkerLiveness } from './liveness.js';
import { Committer } from './committer.js';
import { txns as encode, type Txn } from './encode.js';
import { publishAssigns } from './assign-publisher.js';
import { UnsureAssigns } from './unsure-assigns.js';
import { workerInputs } from './worker-watch.js';
import { answer, lateAnswers, supersededAnswer, type Answered } from './replies.js';
import { HAND_OVER, handsOver, type HandOverRule } from './hand-over.js';
import { WakeTimer } from './wake-timer.js';
import { QueuedReports, type RequestSlot } from './queued-reports.js';
import type { PacingOptions } from './move-pacer.js';
import { PacedBacklog } from './paced-backlog.js';

type Message =
  | Input
  | { kind: 'workers'; events: WatchEvent[] }
  /** A handoff's old owner did not say it stopped in time: fence it. */
  | { kind: 'handoff-timeout'; name: string; worker: string; epoch: string; attempt: number };

/** Rebalancing: rounds at most this often, each moving at most max (and a tenth of all) resources. */
export interface RebalanceOptions {
  enabled: boolean;
  max: number;
  intervalMs: number;
}
export const DEFAULT_REBALANCE: RebalanceOptions = { enabled: true, max: 10, intervalMs: 2000 };

export interface LeaderDeps {
  bus: Bus;
  store: Store;
  clock: Clock;
  id: string;
  guard: Guard;
  /** Every master in the election, leader first. */
  members: () => string[];
  /** Our own lease is certainly alive: a commit whose answer was lost is sent again only then (etcd answers us, slowly). */
  storeReachable: () => boolean;
  /** Our fence failed: step down. Unanswered requests go back to be forwarded. */
  onFenceLost: (unanswered: ClientRequest[]) => void;
  /**
   * A commit failed: give leadership to a warm standby rather than reload. The requests given are unanswered, for the
   * next leader. False: there is nobody to hand over to, so reload.
   */
  onHandOver?: (unanswered: ClientRequest[]) => boolean;
  /** A forwarded request arrived after this leader stopped taking requests. */
  onRejected: (req: ClientRequest) => void;
  log: Logger;
  metrics: GafferMetrics;
  /** Probes workers for liveness (shared with the master). */
  prober: Prober;
  rebalance?: RebalanceOptions;
  /** A warm standby's read, for the first load only (undefined: read etcd). */
  warm?: () => Promise<ClusterRead | undefined>;
  /** Counts and drops sharded resources' queued items (JetStream); without it, sharded resources never complete. */
  shardQueues?: ShardQueueCounter;
  /** When a failed commit hands over rather than reloads (default HAND_OVER). */
  handOver?: HandOverRule;
  /** How moves are paced by etcd's commit times (default PACING). */
  pacing?: PacingOptions;
}


/** ShardQueueCounter is what the leader asks of the shard queues (src/platform/nats/shard-queues.ts). */
export interface ShardQueueCounter {
  count(resourceId: string, shards: number): Promise<number[]>;
  drop(resourceId: string, shards: number): Promise<void>;
}

/** A queue count that failed is answered as unknown after this long, and asked for again. */
const SHARD_PROBE_RETRY_MS = 1000;

/** After a batch failed to plan, the state is read again on the next request, or after this long. */
const PLAN_RETRY_MS = 1000;
/** Largest batch taken from the mailbox at once (counting each task report); bounds reply latency and time away from the event loop. */
const MAX_BATCH = 1024;

export class Leader {
  private state = new ClusterState();
  /** The lease the dedupe records of the loaded state go on (replaced at each load). */
  private lease: DedupeLease;
  private committer: Committer;
  private readonly actor: Actor<Message>;
  private watches: Array<{ close(): Promise<void> }> = [];
  private sub: { unsubscribe(): void } | undefined;
  private loadRevision = 0;
  private readonly liveness: WorkerLiveness;
  private degraded = false;
  /** Requests already planned again once after a failed commit: a second failure is answered. */
  private readonly retried = new WeakSet<ClientRequest>();
  private readonly log: Logger;
  private ticker: Timer | undefined;
  private readonly deadlines: HandoffDeadlines;
  /** Assignment changes whose commit failed with an unknown outcome: told again from etcd's state after the reload. */
  private readonly unsure = new UnsureAssigns();
  /** The last batch threw in planning: the next reload does not plan again at once. */
  private planFailed = false;
  private warm: LeaderDeps['warm'];
  /** Wakes the mailbox when the next schedule fire is due. */
  private readonly fires: WakeTimer;
  /** When this term's state was first loaded. */
  private startedAt = 0;
  /** Handed over to a standby: whatever is in flight or queued is for the next leader. */
  private handedOver = false;
  /** Each worker incarnation's one report request in the mailbox. */
  private readonly reports = new QueuedReports();
  /** Paces moves and other work that can wait by etcd's commit times. */
  private readonly paced: PacedBacklog;

  constructor(private readonly d: LeaderDeps) {
    this.log = d.log.child({ component: 'leader' });
    this.warm = d.warm;
    this.paced = new PacedBacklog(d.clock, this.log, () => this.actor.send({ kind: 'reconcile' }), d.pacing);
    this.lease = new DedupeLease(d.store, d.clock, d.guard.createRevision, 0);
    this.committer = this.newCommitter(undefined);
    this.deadlines = new HandoffDeadlines(d.clock, (name, { worker, epoch, attempt }) => this.actor.send({ kind: 'handoff-timeout', name, worker, epoch, attempt }));
    this.liveness = new WorkerLiveness(
      d.store,
      d.prober,
      this.log,
      (id) => this.state.epochOf(id),
      d.clock,
    );
    this.fires = new WakeTimer(d.clock, () => this.actor.send({ kind: 'tick' }));
    this.actor = new Actor<Message>((batch) => this.receive(batch), {
      maxBatch: MAX_BATCH,
      // A report request carries up to MAX_REPORTS reports: each costs about what a request does.
      // An apply carries up to MAX_APPLY_ITEMS resources: each costs about what an add does.
      weigh: (m) => (m.kind !== 'client' ? 1 : m.req.command.op === 'report' ? m.req.command.reports.length : m.req.command.op === 'apply' ? Math.max(1, m.req.command.resources.length) : 1),
      onError: (err) => this.log.error({ err }, 'leader batch failed'),
    });
  }

  /** start loads the cluster at one revision and then serves; requests sent meanwhile wait in the mailbox. */
  async start(): Promise<void> {
    await this.load();
    this.startedAt = this.d.clock.now();
    this.actor.start();
    const r = this.d.rebalance ?? DEFAULT_REBALANCE;
    if (r.enabled) {
      this.ticker = this.d.clock.every(r.intervalMs, () => this.actor.send({ kind: 'rebalance', limits: { max: r.max, fraction: 0.1 } }));
    }
  }

  /** workers is how many live workers this leader knows. */
  get workers(): number {
    return this.state.workers.size;
  }

  /** submit queues a client request; false once this leader has stopped. */
  submit(req: ClientRequest): boolean {
    const slot: RequestSlot = { kind: 'client', req };
    const superseded = this.actor.status !== ActorStatus.Stopped ? this.reports.offer(slot) : undefined;
    if (!superseded) return this.actor.send(slot);
    this.finish([supersededAnswer(superseded)]);
    return true;
  }

  /** listen takes forwarded requests on master.leader.<id> into the mailbox, and answers probes. */
  listen(): void {
    const { bus } = this.d;
    this.sub = bus.subscribe(subjects.leader(this.d.id), (msg) => {
      if (isPing(msg.headers)) return answerPing(bus, msg);
      let req: ClientRequest;
      try {
        req = parseRequest(forwardedSubject(msg.headers), msg.data, msg.headers, msg.reply, this.d.clock.now());
      } catch (err) {
        if (err instanceof ForeignReplyError) return this.log.warn({ err: err.message }, 'forwarded request dropped');
        return respondError(bus, msg.reply, requestType(msg.headers), err);
      }
      if (!this.submit(req)) this.d.onRejected(req);
    });
  }

  /** stop ends this term. The batch in hand finishes; queued requests are returned to be forwarded. */
  async stop(): Promise<ClientRequest[]> {
    this.sub?.unsubscribe();
    this.ticker?.cancel();
    this.fires.cancel();
    this.paced.cancel();
    this.deadlines.cancelAll();
    this.liveness.stop();
    const rest = await this.actor.stop();
    this.reports.clear();
    this.d.metrics.setDedupeEntries(0);
    await this.committer.drain();
    await this.closeWatches();
    return rest.flatMap((m) => (m.kind === 'client' ? [m.req] : []));
  }

  private newCommitter(chainValue: Uint8Array | undefined): Committer {
    const { metrics } = this.d;
    return new Committer(this.d.store, this.d.guard, chainValue, this.d.clock, this.d.storeReachable, {
      txn: (s) => {
        metrics.observeCommit(s);
        this.paced.committed(s);
      },
      batch: (n) => metrics.observeBatch(n),
      unknownOutcome: () => metrics.observeUnknownOutcome(),
    });
  }

  private async closeWatches(): Promise<void> {
    await Promise.all(this.watches.splice(0).map((w) => w.close()));
  }

  private async load(): Promise<void> {
    await this.closeWatches();
    const { store } = this.d;
    const term = this.d.guard.createRevision;
    // The standby's read is good once, at the start of the term; a reload reads etcd.
    const warm = this.warm;
    this.warm = undefined;
    const read = await warm?.();
    const loaded = read ? await buildCluster(read, this.log, this.d.clock) : await loadCluster(store, this.log, this.d.clock);
    const rev = loaded.revision;
    const lease = new DedupeLease(store, this.d.clock, term, rev);
    await lease.start();
    this.state = loaded.state;
    this.lease = lease;
    this.committer = this.newCommitter(loaded.chainValue);
    this.loadRevision = rev;
    this.degraded = false;
    for (const [id, fence] of loaded.fenceMs) this.liveness.track(id, fence, this.state.epochOf(id)!);
    for (const [id, epoch] of loaded.noted) this.liveness.noted(id, epoch);
    this.watches.push(store.watch(keys.workersPrefix, rev + 1, (events) => this.actor.send({ kind: 'workers', events }), () => this.reset()));
    this.unsure.tell(this.d.bus, this.state, term, rev, this.d.clock.now());
    // Repair and placement go through the mailbox first, ahead of any client request
    // (after a batch that failed to plan, on the retry timer instead).
    if (!this.planFailed) this.actor.send({ kind: 'reconcile' });
    this.planFailed = false;
    void askRunning(this.d.bus, this.state.loads().map((w) => w.id), (worker, tasks) => this.actor.send({ kind: 'running', worker, tasks }));
  }

  private reset(): void {
    // A watch was canceled (compaction) or could not start: re-read everything before the next batch.
    this.degraded = true;
    this.actor.send({ kind: 'reconcile' });
  }

  private async receive(batch: Message[]): Promise<void> {
    this.reports.taken(batch);
    if (this.handedOver) {
      for (const m of batch) if (m.kind === 'client') this.d.onRejected(m.req);
      return;
    }
    if (this.degraded) {
      await this.committer.drain();
      try {
        await this.load();
      } catch (err) {
        const error = toWire(err);
        this.finish(batch.flatMap((m) => (m.kind === 'client' ? [{ req: m.req, reply: { ok: false as const, error } }] : [])));
        return;
      }
    }
    const inputs = this.current(batch).flatMap((m) => this.inputsOf(m));
    let p: Plan;
    let txns: Txn[];
    const ctx = this.context();
    try {
      p = plan(this.state, inputs, ctx);
      txns = encode(p, this.d.guard.createRevision, (entries) => this.lease.record(entries));
    } catch (err) {
      // A bug, or input validation missed: the state may be half changed, so
      // it is thrown away and read again, and this batch is told so rather
      // than left waiting.
      this.log.error({ err }, 'planning a batch failed; reloading state');
      this.degraded = true;
      // Not at once: if what throws is in etcd, reloading finds it again; requests reload as they come.
      this.planFailed = true;
      this.d.clock.after(PLAN_RETRY_MS, () => this.actor.send({ kind: 'reconcile' }));
      const error = new InternalError(`the leader could not plan this request: ${(err as Error).message}`).toWire();
      this.finish(inputs.flatMap((m) => (m.kind === 'client' ? [{ req: m.req, reply: { ok: false as const, error } }] : [])));
      return;
    }
    // Work the batch's budget left over goes on in the next batch, after whatever is waiting now;
    // work the pacing held back, once it allows more.
    this.paced.planned(p.backlog, p.backlogTouched, ctx.backlog ?? Infinity);
    this.lease.maintain();
    // Also when no write comes to expire them, so the window's memory is bounded by time alone.
    this.state.outcomes.expire(this.d.clock.now());
    this.d.metrics.setDedupeEntries(this.state.outcomes.size);
    this.deadlines.apply(p.handoffs);
    this.shardQueues(p);
    this.fires.set(p.wakeAt);
    // Workers hear of each transaction's assignments as soon as it commits: a
    // lost worker's thousand moves are a few dozen transactions, and the first
    // tasks start while the rest commit.
    void this.committer.commit(txns, p.replies.length, (i, rev) => publishAssigns(this.d.bus, txns[i]!.assigns, rev, this.d.clock.now())).then(
      (revs) => this.committed(p, txns, revs),
      (err) => this.failed(p, txns, err),
    );
    await this.committer.room();
  }

  /** current answers TIMEOUT, unplanned, the requests whose clients stopped waiting while they queued (replies.ts). */
  private current(batch: Message[]): Message[] {
    const now = this.d.clock.now();
    const late = lateAnswers(batch.flatMap((m) => (m.kind === 'client' ? [m.req] : [])), now);
    if (late.length === 0) return batch;
    this.log.warn({ requests: late.length }, 'requests waited past their clients\' timeouts; answered TIMEOUT unplanned');
    this.finish(late);
    const gone = new Set(late.map((a) => a.req));
    return batch.filter((m) => m.kind !== 'client' || !gone.has(m.req));
  }

  /** shardQueues counts the queues the plan asked about (the answer is an input of a later batch) and drops removed ones. */
  private shardQueues(p: Plan): void {
    const q = this.d.shardQueues;
    if (!q) return;
    for (const { name, id, count, token } of p.shardProbes) {
      const answer = (queued: number[] | undefined) => this.actor.send({ kind: 'shard-queues', name, id, token, queued });
      q.count(id, count).then(answer, (err: unknown) => {
        this.log.warn({ name, err: (err as Error)?.message }, 'counting shard queues failed; asking again');
        this.d.clock.after(SHARD_PROBE_RETRY_MS, () => answer(undefined));
      });
    }
    for (const { id, count } of p.shardDrops) void q.drop(id, count).catch(() => undefined);
  }

  /** inputsOf turns a mailbox message into plan inputs; worker changes also drive liveness. */
  private inputsOf(m: Message): Input[] {
    if (m.kind === 'handoff-timeout') {
      const from = this.state.handoffFrom(m.name);
      if (from?.worker === m.worker && from.epoch === m.epoch && from.attempt === m.attempt) {
        // It may be hung or cut off: once its lease is gone, its work moves, to start when its fence window has passed.
        void this.liveness.revoke(m.worker, `${m.worker} did not report ${m.name} stopped in time for a handoff`);
      }
      return [];
    }
    if (m.kind !== 'workers') return [m];
    return workerInputs(m.events, { loadRevision: this.loadRevision, epochOf: (id) => this.state.epochOf(id), liveness: this.liveness, log: this.log });
  }

  private committed(p: Plan, txns: Txn[], revs: number[]): void {
    const revisions = new Map<string, number>();
    const now = this.d.clock.now();
    txns.forEach((t, i) => {
      const rev = revs[i]!;
      for (const n of t.names) revisions.set(n, rev);
      this.state.committed(t.names, rev);
      this.state.outcomes.remember(t.entries, rev, now);
    });
    const revisionOf = (n: string) => revisions.get(n) ?? (this.state.revisionOf(n) || undefined);
    this.finish(p.replies.map((r) => ({ req: r.req, reply: r.build(revisionOf) })));
    this.d.metrics.setWorkerLoads(this.state.loads());
    for (const e of p.events) {
      if (e.kind === 'worker.joined' || e.kind === 'worker.lost') this.log.info({ worker: e.payload.worker }, e.kind);
      publishEvent(this.d.bus, this.d.id, e.kind, e.payload, this.d.clock.wall());
    }
  }

  private failed(p: Plan, txns: Txn[], err: unknown): void {
    if (err instanceof NotLeaderError) {
      this.log.warn({ err: err.message }, 'fence failed; stepping down');
      this.d.onFenceLost(p.replies.map((r) => r.req));
      return;
    }
    if (this.handedOver) {
      // A later batch of the pipeline: its chain link failed with the first.
      for (const { req } of p.replies) this.d.onRejected(req);
      return;
    }
    if (this.handOver(p, err)) return;
    // The outcome of the failed transaction is unknown (and later ones in
    // flight fail their chain link): forget the state and reload first.
    this.degraded = true;
    this.unsure.add(txns.flatMap((t) => t.assigns));
    this.actor.send({ kind: 'reconcile' });
    // A broken chain: an earlier transaction we gave up on applied late, or
    // etcd3 re-sent this one to another member after a lost answer and it
    // had applied the first time. Either way the reload reads what applied,
    // with its dedupe records, so planning these requests once more gives
    // each its first outcome. Any other failure (etcd unreachable, a
    // deadline) is answered now: quorum loss must be told fast.
    const again = err instanceof ChainBrokenError;
    const e = err instanceof UnavailableError ? err : new UnavailableError((err as Error).message, { cause: err });
    const told: Answered[] = [];
    for (const { req } of p.replies) {
      if (!again || this.retried.has(req) || !this.submit(req)) told.push({ req, reply: { ok: false, error: e.toWire() } });
      else this.retried.add(req);
    }
    this.log.warn({ err: (err as Error).message, requests: p.replies.length, again: p.replies.length - told.length }, 'commit failed; reloading state');
    this.finish(told);
  }

  /** handOver gives leadership to a standby after a failed commit, when the rule says a reload would cost more. */
  private handOver(p: Plan, err: unknown): boolean {
    // Also when our lease is in doubt: a reload then only adds a read of every record to a struggling etcd.
    if (!this.d.onHandOver || !handsOver(this.d.handOver ?? HAND_OVER, this.state.resources.size, this.d.clock.now() - this.startedAt)) return false;
    this.handedOver = true;
    if (!this.d.onHandOver(p.replies.map((r) => r.req))) {
      this.handedOver = false;
      return false;
    }
    this.log.warn({ err: (err as Error).message, requests: p.replies.length, resources: this.state.resources.size }, 'commit failed; handed over to a standby');
    return true;
  }

  /** context is what a batch is planned with: this leader's term and members, and the world as of now. */
  private context(): PlanContext {
    const { clock } = this.d;
    return {
      backlog: this.paced.allowance(),
      leaderId: this.d.id,
      term: this.d.guard.createRevision,
      members: this.d.members(),
      now: clock.now(),
      wall: new Date(clock.wall()).toISOString(),
      newId: uuidv4,
      random: Math.random,
    };
  }

  private finish(done: Answered[]): void {
    answer(this.d.bus, this.d.id, done);
    const now = this.d.clock.now();
    for (const { req, reply } of done) {
      this.d.metrics.observeRequest(req.subject, reply.ok ? OK_CODE : reply.error.code, (now - req.receivedAt) / 1000);
    }
  }
}
