// Worker: registers under its own lease, learns its assignments on
// worker.<id>.assign, and runs one task actor per assigned resource.
//
// Consistency: the assign subscription is made before every snapshot read, and
// both go through one mailbox, so an event is applied only if it is newer than
// the snapshot (no gap, no duplicate). Core NATS loses what is published while
// we are away, so we re-read after every reconnect and every leader change.
//
// Safety: an assignment is valid only for the worker incarnation (lease) it was
// written for. When keepalives stop succeeding we stop every task before the
// server can expire the lease, so by the time the leader moves our resources,
// they no longer run here.

import type { NatsConnection, Subscription } from 'nats';
import { Actor } from '../src/actor.js';
import { respond } from '../src/bus.js';
import { ContentType, json, packed } from '../src/codec.js';
import { keys, parseKey } from '../src/keys.js';
import { fencingTiming, KeptLease } from '../src/lease.js';
import { isPing } from '../src/prober.js';
import type { ProcessConfig } from '../src/config.js';
import type { Store } from '../src/store.js';
import { connectProcess } from '../src/connect.js';
import { subjects } from '../src/subjects.js';
import { publishEvent } from '../src/events.js';
import { taskKindOf, type AssignEvent, type Resource, type WorkerInfo, type WorkerStatusResult } from '../src/protocol.js';
import { createMetrics, metricsHost, startMetricsServer, type GafferMetrics, type MetricsServer } from '../src/metrics.js';
import { logger, type Logger } from '../src/log.js';
import { startTask, type TaskActor } from './tasks/index.js';
import type { StoredAssignment } from './leader/state.js';

export interface WorkerConfig extends ProcessConfig {
  capacity: number;
}

type Message =
  | { kind: 'assign'; ev: AssignEvent & { epoch?: string } }
  | { kind: 'resync'; why: string }
  | { kind: 'register' };

export class Worker {
  private readonly tasks = new Map<string, TaskActor>();
  /** Per-name revision of the last change applied; anything not newer is old news. */
  private readonly seen = new Map<string, number>();
  private floor = 0;
  private lease: KeptLease | undefined;
  private fenced = true;
  private natsUp = true;
  private stopping = false;
  private readonly actor: Actor<Message>;
  private subs: Subscription[] = [];
  private readonly log: Logger;
  private readonly metrics: GafferMetrics;
  private metricsServer: MetricsServer | undefined;

  private constructor(
    private readonly cfg: WorkerConfig,
    private readonly nc: NatsConnection,
    private readonly store: Store,
  ) {
    this.log = logger().child({ component: 'worker' });
    this.metrics = createMetrics({ labels: { role: 'worker', id: cfg.id } });
    this.actor = new Actor<Message>(([m]) => this.receive(m!), {
      onError: (err) => {
        this.log.warn({ err: (err as Error).message }, 'worker step failed; retrying with a resync');
        setTimeout(() => this.actor.send({ kind: this.lease ? 'resync' : 'register', why: 'retry' } as Message), 500).unref();
      },
    });
  }

  static async start(cfg: WorkerConfig): Promise<Worker> {
    const { nc, store } = await connectProcess('worker', cfg);
    const w = new Worker(cfg, nc, store);
    try {
      if (cfg.metricsPort) w.metricsServer = await startMetricsServer(cfg.metricsPort, w.metrics.registry, metricsHost());
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

  status(): WorkerStatusResult {
    const tasks = [...this.tasks.values()]
      .map((t) => ({ name: t.resource.name, id: t.resource.id, since: new Date(t.startedAt).toISOString() }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    return { id: this.cfg.id, running: tasks.map((t) => t.name), tasks };
  }

  private async run(): Promise<void> {
    const { nc, cfg } = this;
    this.subs.push(
      nc.subscribe(subjects.workerAssign(cfg.id), {
        callback: (_err, msg) => {
          try {
            this.actor.send({ kind: 'assign', ev: json.decode(msg.data) as AssignEvent & { epoch?: string } });
          } catch (err) {
            this.log.warn({ err: (err as Error).message }, 'ignoring malformed assign event');
          }
        },
      }),
      nc.subscribe(subjects.workerStatus(cfg.id), {
        callback: (_err, msg) =>
          isPing(msg.headers) ? msg.respond() : respond(nc, msg.reply, ContentType.json, { ok: true, ...this.status() }),
      }),
      nc.subscribe(subjects.event('leader.elected'), {
        callback: () => this.actor.send({ kind: 'resync', why: 'leader changed' }),
      }),
    );
    void (async () => {
      for await (const st of nc.status()) {
        if (st.type === 'disconnect') this.natsUp = false;
        if (st.type === 'reconnect') {
          this.natsUp = true;
          this.actor.send({ kind: this.lease?.alive ? 'resync' : 'register', why: 'nats reconnected' } as Message);
        }
      }
    })().catch(() => undefined);
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
    this.apply(m.ev);
  }

  private async register(): Promise<void> {
    // Cut off from NATS we would neither hear our assignments nor answer the
    // leader's probes: registering would only make us hold work we cannot do.
    if (!this.natsUp) throw new Error('not registering while NATS is unreachable');
    const timing = fencingTiming(this.cfg.ttlSeconds);
    const lease = await KeptLease.grant(this.store, timing, {
      onFenced: () => this.fence('keepalive overdue'),
      onRestored: () => this.actor.send({ kind: 'resync', why: 'lease restored' }),
      onExpired: () => {
        this.fence('lease expired');
        this.actor.send({ kind: 'register' });
      },
    });
    const info: WorkerInfo = { id: this.cfg.id, capacity: this.cfg.capacity, fenceMs: timing.validityMs };
    await this.store.txn(undefined, [{ put: keys.worker(this.cfg.id), value: packed.encode(info), lease: lease.id }]);
    this.lease = lease;
    this.log.info({ lease: lease.id, capacity: this.cfg.capacity }, 'worker registered');
  }

  /** fence stops every task now, outside the mailbox: it must not wait behind a slow etcd read. */
  private fence(why: string): void {
    this.fenced = true;
    // If the fence fires late, this process did not run between the lease's
    // deadline and now (paused or blocked), so neither did its tasks: they
    // ended at the deadline. The log says both.
    const endedAt = Math.min(Date.now(), this.lease?.deadlineWallClock ?? Date.now());
    this.log.warn({ why, tasks: this.tasks.size }, 'fencing: stopping every task');
    for (const name of [...this.tasks.keys()]) this.stopTask(name, `fenced: ${why}`, endedAt);
  }

  /** resync makes the running tasks match our assignments in etcd, as of one revision. */
  private async resync(why: string): Promise<void> {
    const lease = this.lease;
    if (!lease) return;
    const snap = await this.store.range(keys.assignments(this.cfg.id));
    if (!lease.alive) return; // a fence fired meanwhile; the next register/restore resyncs
    this.fenced = false;
    const want = new Map<string, Resource>();
    this.seen.clear();
    for (const kv of snap.kvs) {
      const k = parseKey.assignment(kv.key);
      if (!k) continue;
      const { epoch, term: _term, ...rec } = packed.decode(kv.value) as StoredAssignment;
      this.seen.set(k.name, kv.modRevision);
      if (epoch === lease.id) want.set(k.name, { ...rec, revision: kv.modRevision });
    }
    this.floor = snap.revision;
    for (const name of [...this.tasks.keys()]) {
      if (want.get(name)?.id !== this.tasks.get(name)!.resource.id) this.stopTask(name, `resync (${why})`);
    }
    for (const r of want.values()) if (!this.tasks.has(r.name)) this.startTask(r);
    this.log.debug({ why, revision: snap.revision, running: this.tasks.size }, 'resynced');
  }

  /**
   * valid checks the lease on the monotonic clock, now. The fence timer can
   * fire late: after a pause (SIGSTOP) or a blocked event loop, I/O
   * callbacks may run before timers, so nothing may start on the strength of
   * `fenced` alone.
   */
  private valid(): boolean {
    if (this.fenced || this.stopping) return false;
    if (this.lease?.alive) return true;
    this.fence('lease deadline passed');
    return false;
  }

  private apply(ev: AssignEvent & { epoch?: string }): void {
    if (!this.valid()) return;
    const r = ev?.resource;
    if (!r || typeof r.name !== 'string' || typeof ev.revision !== 'number') return;
    if (ev.revision <= Math.max(this.floor, this.seen.get(r.name) ?? 0)) return;
    this.seen.set(r.name, ev.revision);
    if (ev.type === 'delete') return this.stopTask(r.name, 'unassigned');
    const mine = this.lease && ev.epoch === this.lease.id && !this.fenced;
    const cur = this.tasks.get(r.name);
    if (cur && (!mine || cur.resource.id !== r.id)) this.stopTask(r.name, mine ? 'replaced' : 'not ours');
    if (mine && !this.tasks.has(r.name)) this.startTask(r);
  }

  private startTask(r: Resource): void {
    if (!this.valid()) return;
    this.tasks.set(r.name, startTask(r, this.log));
    this.metrics.setRunningTasks(this.tasks.size);
    this.log.info({ name: r.name, resourceId: r.id, at: Date.now() }, 'task started');
    publishEvent(this.nc, this.cfg.id, 'task.started', { name: r.name, id: r.id, worker: this.cfg.id, taskKind: taskKindOf(r.spec) });
  }

  private stopTask(name: string, reason: string, endedAt = Date.now()): void {
    const t = this.tasks.get(name);
    if (!t) return;
    this.tasks.delete(name);
    this.metrics.setRunningTasks(this.tasks.size);
    void t.stop();
    const id = t.resource.id;
    this.log.info({ name, resourceId: id, reason, at: endedAt, loggedAt: Date.now() }, 'task stopped');
    publishEvent(this.nc, this.cfg.id, 'task.stopped', { name, id, worker: this.cfg.id, reason, endedAt: new Date(endedAt).toISOString() });
  }

  /** stop: stop every task, then deregister so the leader moves our resources at once. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const s of this.subs) s.unsubscribe();
    await this.actor.stop();
    const stops = [...this.tasks.values()].map((t) => t.stop());
    for (const name of [...this.tasks.keys()]) this.stopTask(name, 'worker stopping');
    await Promise.all(stops);
    await this.lease?.revoke();
    await this.metricsServer?.close();
    await this.nc.drain().catch(() => undefined);
    this.store.close();
  }

  /** crash drops everything without deregistering; for tests of the lease path only. */
  async kill(): Promise<void> {
    this.stopping = true;
    this.lease?.release();
    await this.actor.stop();
    await this.metricsServer?.close();
    await this.nc.close();
    this.store.close();
  }
}
