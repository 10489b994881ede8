// Worker: registers under its own lease (advertising the task kinds it runs),
// learns its assignments on worker.<id>.assign, and runs one attempt per
// assigned resource (runtime/attempts.ts), reporting each to the leader.
//
// Consistency: the assign subscription is made before every snapshot read, and
// both go through one mailbox; assignments.ts decides what each changes. Core
// NATS loses what is published while we are away, so we re-read after every
// reconnect and every leader change.
//
// Safety: an assignment is valid only for the worker incarnation (lease) it was
// written for. When keepalives stop succeeding we stop every task before the
// server can expire the lease, so by the time the leader moves our resources,
// they no longer run here.
//
// It talks to the outside only through the ports it is given (bus, store,
// clock, randomness); process.ts composes it with NATS, etcd, the kind
// modules, JetStream and the metrics server.

import { ContentType, packed } from '#protocol/codec.js';
import { keys, parseKey } from '#protocol/keys.js';
import { subjects } from '#protocol/subjects.js';
import { electedFleet } from '#protocol/events.js';
import type { WorkerInfo } from '#protocol/stored.js';
import { decodeAssignEvent, decodeAssignments } from '#protocol/assigned.js';
import type { AssignEvent, WorkerStatusResult } from '#protocol/messages.js';
import { Actor } from '#platform/actor.js';
import { respond } from '#platform/nats/bus.js';
import { answerPing, isPing } from '#platform/nats/prober.js';
import { fencingTiming, KeptLease } from '#platform/etcd/lease.js';
import type { Bus, KV, Store } from '#platform/ports.js';
import type { Clock } from '#platform/clock.js';
import type { GafferMetrics } from '#platform/metrics.js';
import { WorkerLog, type Logger } from '#platform/log.js';
import { Backoff } from '#platform/retry.js';
import { RestoreHoldOff } from './restore-hold-off.js';
import { Assignments, type Action, type Assigned } from './assignments.js';
import type { KindRegistry } from './runtime/kind-modules.js';
import { Reporter } from './runtime/reporter.js';
import type { ShardQueuesPort } from './runtime/shard-io.js';
import { Attempts, type ResultsSink, type TaskStateSink } from './runtime/attempts.js';

export const DEFAULT_STOP_GRACE_MS = 2000;

/**
 * How far apart the resyncs of a whole fleet are spread: at least a second,
 * and 10 ms more per worker, so that etcd answers the fleet's reads at about
 * the same rate however big it is (a thousand workers reading at once kept a
 * loaded etcd from answering lease keepalives), up to half a minute. A
 * resync is the safety net under the assign events, which do not wait.
 */
/** A failed step is retried after 0.5 s, then later, up to 15 s apart. */
export const STEP_RETRY = { initialMs: 500, maxMs: 15_000 };
export const RESYNC_SPREAD_MS = 1000;
export const RESYNC_SPREAD_PER_WORKER_MS = 10;
export const RESYNC_SPREAD_MAX_MS = 30_000;

/** resyncSpreadMs is the window a fleet of `workers` spreads its resyncs over. */
export function resyncSpreadMs(workers: number): number {
  return Math.min(RESYNC_SPREAD_MAX_MS, Math.max(RESYNC_SPREAD_MS, workers * RESYNC_SPREAD_PER_WORKER_MS));
}

export interface WorkerDeps {
  id: string;
  capacity: number;
  /** Labels for placement constraints and preferences. */
  labels: Record<string, string>;
  /** The lease TTL the fencing timing derives from. */
  ttlSeconds: number;
  /** How long a task may take to return after its signal aborts before it is stopped by force. */
  stopGraceMs: number;
  bus: Bus;
  store: Store;
  clock: Clock;
  log: Logger;
  metrics: GafferMetrics;
  /** Uniform in [0, 1), like Math.random: spreads a fleet's resyncs. */
  random: () => number;
  /** The kinds this worker runs, and the host of each. */
  kinds: Pick<KindRegistry, 'kinds' | 'host'>;
  /** Where task results go (JetStream). */
  results: ResultsSink;
  /** Shard-to-shard queues (JetStream), for sharded resources. */
  queues?: ShardQueuesPort;
  /** Where ctx.store keeps its keys (JetStream KV); without it, ctx.store rejects. */
  taskState?: TaskStateSink;
}

type Message = { kind: 'assign'; ev: AssignEvent } | { kind: 'resync'; why: string } | { kind: 'register'; why: string };

export class Worker {
  private readonly attempts: Attempts;
  private readonly assignments = new Assignments();
  private lease: KeptLease | undefined;
  private fenced = true;
  /** The stops the last fence began: settled once no task of the fenced lease runs. */
  private fencing: Promise<void> = Promise.resolve();
  private natsUp = true;
  /** The fleet's size as the last leader.elected said (0: not heard yet). */
  private fleet = 0;
  private stopping = false;
  private readonly bus: Bus;
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly actor: Actor<Message>;
  private subs: Array<{ unsubscribe(): void }> = [];
  private unhook: () => void = () => undefined;
  private readonly reporter: Reporter;
  /**
   * A failed step (etcd slow or down) is retried later and later: a fleet
   * retrying every half second read every assignment ten times a second
   * from an etcd already past its deadlines.
   */
  private readonly retries: Backoff;
  private readonly holdOff: RestoreHoldOff;

  constructor(private readonly cfg: WorkerDeps) {
    this.bus = cfg.bus;
    this.store = cfg.store;
    this.clock = cfg.clock;
    this.log = cfg.log;
    this.reporter = new Reporter(this.bus, this.clock, cfg.id, this.log);
    this.retries = new Backoff(STEP_RETRY, cfg.random);
    this.holdOff = new RestoreHoldOff(cfg.random);
    this.actor = new Actor<Message>(([m]) => this.receive(m!), {
      onError: (err) => {
        const ms = this.retries.next();
        this.log.warn({ err: (err as Error).message, retryMs: Math.round(ms) }, 'worker step failed; retrying with a resync');
        this.clock.after(ms, () => this.actor.send(this.lease ? { kind: 'resync', why: 'retry' } : { kind: 'register', why: 'retry' }));
      },
    });
    this.attempts = new Attempts({
      worker: cfg.id,
      hostFor: (kind) => cfg.kinds.host(kind),
      reporter: this.reporter,
      results: cfg.results,
      ...(cfg.queues ? { queues: cfg.queues } : {}),
      ...(cfg.taskState ? { taskState: cfg.taskState } : {}),
      store: this.store,
      bus: this.bus,
      clock: this.clock,
      log: this.log,
      epoch: () => this.lease?.id,
      mayStart: () => this.valid(),
      leaseHeld: () => this.leaseHeld(),
      onCountChange: (n) => cfg.metrics.setRunningTasks(n),
    });
  }

  get id(): string {
    return this.cfg.id;
  }

  private get graceMs(): number {
    return this.cfg.stopGraceMs;
  }

  status(): WorkerStatusResult {
    const tasks = this.attempts.status();
    return { id: this.cfg.id, running: tasks.map((t) => t.name), tasks };
  }

  /**
   * checkLease fences now if the lease lapsed unnoticed: the process calls
   * it when it resumes after a stall (a pause, a starved process).
   */
  /** leaseAlive: our lease is certainly alive, so etcd answered our keepalives recently (for /healthz). */
  get leaseAlive(): boolean {
    return this.lease?.alive ?? false;
  }

  checkLease(): void {
    if (this.lease && !this.stopping) this.leaseHeld();
  }

  /**
   * start subscribes, registers and takes the first snapshot before it
   * resolves, so a caller knows the worker is live; failures here are start
   * failures.
   */
  async start(): Promise<void> {
    const { bus, cfg } = this;
    this.subs.push(
      bus.subscribe(subjects.workerAssign(cfg.id), (msg) => {
        const ev = decodeAssignEvent(msg.data);
        if (ev) this.actor.send({ kind: 'assign', ev });
        else this.log.warn({ subject: msg.subject }, 'ignoring malformed assign event');
      }),
      bus.subscribe(subjects.workerStatus(cfg.id), (msg) =>
        isPing(msg.headers) ? answerPing(bus, msg) : respond(bus, msg.reply, ContentType.json, { ok: true, ...this.status() }),
      ),
      bus.subscribe(subjects.event('leader.elected'), (msg) => {
        this.fleet = electedFleet(msg.data) ?? this.fleet;
        this.resyncSoon('leader changed');
      }),
    );
    this.unhook = bus.onStatus((s) => {
      if (s === 'cluster') return; // another server joined or left; our own connection is unchanged
      this.natsUp = s === 'reconnect';
      if (s !== 'reconnect') return;
      if (this.lease?.alive) this.resyncSoon('nats reconnected');
      else this.actor.send({ kind: 'register', why: 'nats reconnected' });
    });
    this.actor.start();
    await this.register();
    await this.resync('start');
  }

  private async receive(m: Message): Promise<void> {
    if (this.stopping) return;
    if (m.kind === 'register') {
      await this.register();
      await this.resync('re-registered');
      return this.retries.reset();
    }
    if (m.kind === 'resync') {
      await this.resync(m.why);
      return this.retries.reset();
    }
    if (!this.valid()) return;
    this.act(this.assignments.apply(m.ev, this.lease!.id, this.attempts.known()));
  }

  private async register(): Promise<void> {
    // Cut off from NATS we would neither hear our assignments nor answer the
    // leader's probes: registering would only make us hold work we cannot do.
    if (!this.natsUp) throw new Error('not registering while NATS is unreachable');
    await this.fencing;
    const timing = fencingTiming(this.cfg.ttlSeconds);
    const lease = await KeptLease.grant(
      this.store,
      timing,
      {
        onFenced: () => this.fence('keepalive overdue'),
        onRestored: () => {
          const ms = this.holdOff.restoredWaitMs();
          if (ms > 0) this.log.info({ waitMs: Math.round(ms) }, 'lease restored after repeated fences; restarting tasks later');
          this.clock.after(ms, () => this.actor.send({ kind: 'resync', why: 'lease restored' }));
        },
        onExpired: () => {
          this.fence('lease expired');
          this.actor.send({ kind: 'register', why: 'lease expired' });
        },
      },
      this.clock,
    );
    const info: WorkerInfo = { id: this.cfg.id, capacity: this.cfg.capacity, fenceMs: timing.validityMs, kinds: this.cfg.kinds.kinds(), labels: this.cfg.labels };
    await this.store.txn(undefined, [{ put: keys.worker(this.cfg.id), value: packed.encode(info), lease: lease.id }]);
    this.lease = lease;
    this.log.info({ lease: lease.id, capacity: this.cfg.capacity, kinds: info.kinds }, 'worker registered');
  }

  /**
   * resyncSoon resyncs after a random delay within the fleet's spread: what
   * makes one worker resync (a new leader, a NATS server back) makes every
   * worker resync, and a fleet reading all its assignments in one burst
   * starves etcd of the CPU it needs to answer lease keepalives.
   */
  private resyncSoon(why: string): void {
    this.clock.after(this.cfg.random() * resyncSpreadMs(this.fleet), () => this.actor.send({ kind: 'resync', why }));
  }

  /** fence stops every task now, outside the mailbox: it must not wait behind a slow etcd read. */
  private fence(why: string): void {
    if (!this.fenced) this.holdOff.fenced(this.clock.now());
    this.fenced = true;
    // If the fence fires late, this process did not run between the lease's
    // deadline and now (paused or blocked), so neither did its tasks: they
    // ended at the deadline. The log says both.
    const now = this.clock.wall();
    const endedAt = Math.min(now, this.lease?.deadlineWallClock ?? now);
    this.log.warn({ why, tasks: this.attempts.running }, WorkerLog.fencing);
    // No grace: nothing may outlive the lease. Registering again waits for
    // this, so no task of the lost lease still runs once a new one is held.
    // A second fence (the lease then expires too) finds nothing left to stop: keep waiting for the first's.
    this.fencing = Promise.all([this.fencing, this.attempts.stopAll(`fenced: ${why}`, 0, endedAt)]).then(() => undefined);
  }

  /** resync makes the running tasks match our assignments in etcd, as of one revision. */
  private async resync(why: string): Promise<void> {
    // A lease restored while a fence's stops are under way: what they stop
    // may be ours again, and must not start while its old thread still runs.
    await this.fencing;
    const lease = this.lease;
    if (!lease) return;
    // Keys first: when they are what we last applied, the values we hold are etcd's.
    const prefix = keys.assignments(this.cfg.id);
    const index = await this.store.range(prefix, undefined, { keysOnly: true });
    const names = index.kvs.flatMap((kv) => {
      const k = parseKey.assignment(kv.key);
      return k ? [{ name: k.name, modRevision: kv.modRevision }] : [];
    });
    const same = this.assignments.unchanged(names);
    const snap = same ? index : await this.store.range(prefix);
    if (!lease.alive) return; // a fence fired meanwhile; the next register/restore resyncs
    this.fenced = false;
    const assigned = same ?? this.decodeAssigned(snap.kvs);
    this.act(this.assignments.snapshot(assigned, snap.revision, lease.id, this.attempts.known(), why));
    this.log.debug({ why, revision: snap.revision, values: same ? 'kept' : 'read', running: this.attempts.running }, 'resynced');
  }

  /** decodeAssigned reads assignment values; a malformed one is logged and left out. */
  private decodeAssigned(kvs: readonly KV[]): Assigned[] {
    const { assigned, malformed } = decodeAssignments(kvs);
    for (const m of malformed) this.log.warn(m, 'ignoring malformed assignment');
    return assigned;
  }

  private act(actions: readonly Action[]): void {
    for (const a of actions) {
      if (a.kind === 'stop') void this.attempts.stop(a.name, a.reason, this.graceMs);
      else if (this.valid()) this.attempts.start(a.task);
    }
  }

  /**
   * valid checks the lease on the monotonic clock, now. The fence timer can
   * fire late: after a pause (SIGSTOP) or a blocked event loop, I/O
   * callbacks may run before timers, so nothing may start on the strength of
   * `fenced` alone.
   */
  private valid(): boolean {
    return !this.stopping && this.leaseHeld();
  }

  /** leaseHeld: the lease is certainly alive now; if its deadline passed unnoticed, fence at once. */
  private leaseHeld(): boolean {
    if (this.fenced) return false;
    if (this.lease?.alive) return true;
    this.fence('lease deadline passed');
    return false;
  }

  /** stop: stop every task, then deregister so the leader moves our resources at once. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const s of this.subs) s.unsubscribe();
    this.unhook();
    await this.actor.stop();
    await this.attempts.stopAll('worker stopping', this.graceMs);
    this.attempts.close();
    this.reporter.close();
    await this.lease?.revoke();
  }

  /** kill drops everything without deregistering: for a start that failed, and tests of the lease path. */
  async kill(): Promise<void> {
    this.stopping = true;
    for (const s of this.subs) s.unsubscribe();
    this.unhook();
    this.lease?.release();
    this.reporter.close();
    await this.attempts.stopAll('worker killed', 0);
    this.attempts.close();
    await this.actor.stop();
  }
}
