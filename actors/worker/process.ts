// The worker process: connects to NATS and etcd, loads the kind modules,
// builds the real ports and the Worker actor over them, and adds what only a
// process has: the results publisher on JetStream, the metrics server, and
// the stall watch that makes a worker resumed past its lease fence at once.

import type { NatsConnection } from 'nats';
import type { ProcessConfig } from '#platform/config.js';
import type { Store } from '#platform/ports.js';
import { NatsBus } from '#platform/nats/bus.js';
import { RESULTS_DEFAULTS, ResultsPublisher } from '#platform/nats/results.js';
import { ShardQueues } from '#platform/nats/shard-queues.js';
import { TASK_STATE_DEFAULTS, TaskStateStore } from '#platform/nats/task-state.js';
import { connectProcess } from '#platform/connect.js';
import { systemClock } from '#platform/clock.js';
import { createMetrics, metricsHost, startMetricsServer, type MetricsServer } from '#platform/metrics.js';
import { etcdCheck, healthProbe, loopCheck, natsCheck } from '#platform/health.js';
import { logger } from '#platform/log.js';
import { onStall, watchStalls } from '#platform/stall.js';
import { KindRegistry } from './runtime/kind-modules.js';
import { builtinKinds } from './kinds/index.js';
import { DEFAULT_STOP_GRACE_MS, Worker } from './worker.js';

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

export class WorkerProcess {
  private metricsServer: MetricsServer | undefined;
  private offStall: () => void = () => undefined;
  private stopping = false;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly store: Store,
    readonly worker: Worker,
  ) {}

  /** start resolves once the worker is registered and has read its assignments. */
  static async start(cfg: WorkerConfig): Promise<WorkerProcess> {
    const { nc, store } = await connectProcess('worker', cfg);
    const log = logger().child({ component: 'worker' });
    watchStalls(logger());
    const memory = cfg.taskMemoryMb ? { memoryMb: cfg.taskMemoryMb } : {};
    let kinds: KindRegistry;
    try {
      // Kind modules are loaded (in throwaway threads) before we register, so we advertise only kinds we can run.
      kinds = await KindRegistry.load(cfg.tasks ?? [], builtinKinds(memory), memory);
    } catch (err) {
      await nc.close();
      store.close();
      throw err;
    }
    const metrics = createMetrics({ labels: { role: 'worker', id: cfg.id } });
    const worker = new Worker({
      id: cfg.id,
      capacity: cfg.capacity,
      labels: cfg.labels ?? {},
      ttlSeconds: cfg.ttlSeconds,
      stopGraceMs: cfg.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
      bus: new NatsBus(nc),
      store,
      clock: systemClock,
      log,
      metrics,
      random: Math.random,
      kinds,
      // Retried: a clustered results stream has no leader for a few seconds after its server dies.
      results: new ResultsPublisher(nc, { retryMs: RESULTS_DEFAULTS.emitRetryMs }),
      queues: new ShardQueues(nc),
      taskState: new TaskStateStore(nc, { retryMs: TASK_STATE_DEFAULTS.retryMs }),
    });
    const p = new WorkerProcess(nc, store, worker);
    p.offStall = onStall(() => worker.checkLease());
    try {
      const health = healthProbe({ loop: loopCheck(), nats: natsCheck(nc), etcd: etcdCheck(() => worker.leaseAlive) });
      if (cfg.metricsPort) p.metricsServer = await startMetricsServer(cfg.metricsPort, metrics.registry, { ...metricsHost(), health });
      await worker.start();
    } catch (err) {
      await p.kill();
      throw err;
    }
    return p;
  }

  get id(): string {
    return this.worker.id;
  }

  /** stop stops every task, deregisters so the leader moves our resources at once, and closes the connections. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.offStall();
    await this.worker.stop();
    await this.close(() => this.nc.drain());
  }

  /** kill drops everything without deregistering; the lease runs out on its own. */
  async kill(): Promise<void> {
    this.stopping = true;
    this.offStall();
    await this.worker.kill();
    await this.close(() => this.nc.close());
  }

  private async close(nats: () => Promise<void>): Promise<void> {
    await this.metricsServer?.close();
    await nats().catch(() => undefined);
    this.store.close();
  }
}
