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

import type { NatsConnection } from 'nats';
import { ContentType, json, packed } from '#protocol/codec.js';
import { keys, parseKey } from '#protocol/keys.js';
import { subjects } from '#protocol/subjects.js';
import { decodeAssignment, type WorkerInfo } from '#protocol/stored.js';
import type { AssignEvent, WorkerStatusResult } from '#protocol/messages.js';
import { Actor } from '#platform/actor.js';
import { NatsBus, respond } from '#platform/nats/bus.js';
import { answerPing, isPing } from '#platform/nats/prober.js';
import { publishEvent } from '#platform/nats/events.js';
import { fencingTiming, KeptLease } from '#platform/etcd/lease.js';
import type { ProcessConfig } from '#platform/config.js';
import type { KV, Store } from '#platform/ports.js';
import { connectProcess } from '#platform/connect.js';
import { systemClock, type Clock } from '#platform/clock.js';
import { etcdCheck, healthProbe, loopCheck, natsCheck } from '#platform/health.js';
import { createMetrics, metricsHost, startMetricsServer, type GafferMetrics, type MetricsServer } from '#platform/metrics.js';
import { logger, WorkerLog, type Logger } from '#platform/log.js';
import { onStall, watchStalls } from '#platform/stall.js';
import { RESULTS_DEFAULTS, ResultsPublisher } from '#platform/nats/results.js';
import { Assignments, isAssignEvent, type Action, type Assigned } from './assignments.js';
import { KindRegistry } from './runtime/kind-modules.js';
import { Reporter } from './runtime/reporter.js';
import { Attempts } from './runtime/attempts.js';
import { builtinKinds } from './kinds/index.js';

export interface WorkerConfig extends ProcessConfig {
  capacity: number;
  /** Task-kind modules (paths or package names), each run in worker threads. */
  tasks?: string[];
  /** How long a task may take to return after its signal aborts before it is stopped by force. */
  stopGraceMs?: number;
  /** Heap limit of each task thread. */
  taskMemoryMb?: number;
  /** Labels for placement constraints and preferences (--label k=v). */
  labels?: Record<string, string>;
}

export const DEFAULT_STOP_GRACE_MS = 2000;

/** How far apart the resyncs of a whole fleet are spread. */
const RESYNC_SPREAD_MS = 1000;

type Message = { kind: 'assign'; ev: AssignEvent } | { kind: 'resync'; why: string } | { kind: 'register'; why: string };

export class Worker {
  private attempts!: Attempts;
  private kinds!: KindRegistry;
  private readonly assignments = new Assignments();
  private lease: KeptLease | undefined;
  private fenced = true;
  /** The stops the last fence began: settled once no task of the fenced lease runs. */
  private fencing: Promise<void> = Promise.resolve();
  private natsUp = true;
  private stopping = false;
  private readonly bus: NatsBus;
  private readonly clock: Clock = systemClock;
  private readonly actor: Actor<Message>;
  private subs: Array<{ unsubscribe(): void }> = [];
  private unhook: () => void = () => undefined;
  private offStall: () => void = () => undefined;
  private readonly log: Logger;
  private readonly metrics: GafferMetrics;
  private metricsServer: MetricsServer | undefined;
  private readonly reporter: Reporter;

  private constructor(
    private readonly cfg: WorkerConfig,
    private readonly nc: NatsConnection,
    private readonly store: Store,
  ) {
    this.log = logger().child({ component: 'worker' });
    watchStalls(logger());
    // Resumed after a stall (a pause, a starved process): fence now if the lease lapsed meanwhile.
    this.offStall = onStall(() => void (this.lease && !this.stopping && this.leaseHeld()));
    this.bus = new NatsBus(nc);
    this.metrics = createMetrics({ labels: { role: 'worker', id: cfg.id } });
    this.reporter = new Reporter(this.bus, this.clock, cfg.id, this.log);
    this.actor = new Actor<Message>(([m]) => this.receive(m!), {
      onError: (err) => {
        this.log.warn({ err: (err as Error).message }, 'worker step failed; retrying with a resync');
        this.clock.after(500, () => this.actor.send(this.lease ? { kind: 'resync', why: 'retry' } : { kind: 'register', why: 'retry' }));
      },
    });
  }

  static async start(cfg: WorkerConfig): Promise<Worker> {
    const { nc, store } = await connectProcess('worker', cfg);
    const w = new Worker(cfg, nc, store);
    try {
      // Kind modules are loaded (in throwaway threads) before we register, so we advertise only kinds we can run.
      w.kinds = await KindRegistry.load(cfg.tasks ?? [], builtinKinds({ ...(cfg.taskMemoryMb ? { memoryMb: cfg.taskMemoryMb } : {}) }), {
        ...(cfg.taskMemoryMb ? { memoryMb: cfg.taskMemoryMb } : {}),
      });
      w.attempts = w.newAttempts();
      const health = healthProbe({ loop: loopCheck(), nats: natsCheck(nc), etcd: etcdCheck(() => w.lease?.alive ?? false) });
      if (cfg.metricsPort) w.metricsServer = await startMetricsServer(cfg.metricsPort, w.metrics.registry, { ...metricsHost(), health });
      await w.run();
    } catch (err) {
      await w.kill();
      throw err;
    }
    return w;
  }

  get id(): string {
    return this.cfg.id;
  }

  private newAttempts(): Attempts {
    return new Attempts({
      worker: this.cfg.id,
      hostFor: (kind) => this.kinds.host(kind),
      reporter: this.reporter,
      // Retried: a clustered results stream has no leader for a few seconds after its server dies.
      results: new ResultsPublisher(this.nc, { retryMs: RESULTS_DEFAULTS.emitRetryMs }),
      store: this.store,
      bus: this.bus,
      clock: this.clock,
      log: this.log,
      epoch: () => this.lease?.id,
      mayStart: () => this.valid(),
      leaseHeld: () => this.leaseHeld(),
      onCountChange: (n) => this.metrics.setRunningTasks(n),
    });
  }

  private get graceMs(): number {
    return this.cfg.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
  }

  status(): WorkerStatusResult {
    const tasks = this.attempts.status();
    return { id: this.cfg.id, running: tasks.map((t) => t.name), tasks };
  }

  private async run(): Promise<void> {
    const { bus, cfg } = this;
    this.subs.push(
      bus.subscribe(subjects.workerAssign(cfg.id), (msg) => {
        let ev: unknown;
        try {
          ev = json.decode(msg.data);
        } catch {
          ev = undefined;
        }
        if (isAssignEvent(ev)) this.actor.send({ kind: 'assign', ev });
        else this.log.warn({ subject: msg.subject }, 'ignoring malformed assign event');
      }),
      bus.subscribe(subjects.workerStatus(cfg.id), (msg) =>
        isPing(msg.headers) ? answerPing(bus, msg) : respond(bus, msg.reply, ContentType.json, { ok: true, ...this.status() }),
      ),
      bus.subscribe(subjects.event('leader.elected'), () => this.resyncSoon('leader changed')),
    );
    this.unhook = bus.onStatus((s) => {
      if (s === 'cluster') return; // another server joined or left; our own connection is unchanged
      this.natsUp = s === 'reconnect';
      if (s !== 'reconnect') return;
      if (this.lease?.alive) this.resyncSoon('nats reconnected');
      else this.actor.send({ kind: 'register', why: 'nats reconnected' });
    });
    this.actor.start();
    // Register and take the first snapshot before start() resolves, so a caller
    // knows the worker is live; failures here are start failures.
    await this.register();
    await this.resync('start');
  }

  private async receive(m: Message): Promise<void> {
    if (this.stopping) return;
    if (m.kind === 'register') return this.register().then(() => this.resync('re-registered'));
    if (m.kind === 'resync') return this.resync(m.why);
    if (!this.valid()) return;
    this.act(this.assignments.apply(m.ev, this.lease!.id, this.attempts.held()));
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
        onRestored: () => this.actor.send({ kind: 'resync', why: 'lease restored' }),
        onExpired: () => {
          this.fence('lease expired');
          this.actor.send({ kind: 'register', why: 'lease expired' });
        },
      },
      this.clock,
    );
    const info: WorkerInfo = { id: this.cfg.id, capacity: this.cfg.capacity, fenceMs: timing.validityMs, kinds: this.kinds.kinds(), labels: this.cfg.labels ?? {} };
    await this.store.txn(undefined, [{ put: keys.worker(this.cfg.id), value: packed.encode(info), lease: lease.id }]);
    this.lease = lease;
    this.log.info({ lease: lease.id, capacity: this.cfg.capacity, kinds: info.kinds }, 'worker registered');
  }

  /**
   * resyncSoon resyncs after a random delay of up to RESYNC_SPREAD_MS: what
   * makes one worker resync (a new leader, a NATS server back) makes every
   * worker resync, and a fleet reading all its assignments in one burst
   * starves etcd of the CPU it needs to answer lease keepalives.
   */
  private resyncSoon(why: string): void {
    this.clock.after(Math.random() * RESYNC_SPREAD_MS, () => this.actor.send({ kind: 'resync', why }));
  }

  /** fence stops every task now, outside the mailbox: it must not wait behind a slow etcd read. */
  private fence(why: string): void {
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
    this.act(this.assignments.snapshot(assigned, snap.revision, lease.id, this.attempts.held(), why));
    this.log.debug({ why, revision: snap.revision, values: same ? 'kept' : 'read', running: this.attempts.running }, 'resynced');
  }

  /** decodeAssigned reads assignment values; a malformed one is logged and left out. */
  private decodeAssigned(kvs: readonly KV[]): Assigned[] {
    const out: Assigned[] = [];
    for (const kv of kvs) {
      if (!parseKey.assignment(kv.key)) continue;
      try {
        out.push(decodeAssignment(kv.value, kv.modRevision));
      } catch (err) {
        this.log.warn({ key: kv.key, err: (err as Error).message }, 'ignoring malformed assignment');
      }
    }
    return out;
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
    this.offStall();
    await this.actor.stop();
    await this.attempts.stopAll('worker stopping', this.graceMs);
    this.attempts.close();
    this.reporter.close();
    await this.lease?.revoke();
    await this.metricsServer?.close();
    await this.nc.drain().catch(() => undefined);
    this.store.close();
  }

  /** kill drops everything without deregistering; for tests of the lease path only. */
  async kill(): Promise<void> {
    this.stopping = true;
    this.unhook();
    this.offStall();
    this.lease?.release();
    this.reporter.close();
    if (this.attempts) {
      await this.attempts.stopAll('worker killed', 0);
      this.attempts.close();
    }
    await this.actor.stop();
    await this.metricsServer?.close();
    await this.nc.close();
    this.store.close();
  }
}
