// The master process: connects to NATS and etcd, builds the real ports and
// the Master actor over them, and adds what only a process has: the client
// service in the `masters` queue group, the metrics server, the dashboard,
// heap reports on a signal, and the results stream.

import type { NatsConnection } from 'nats';
import { DEFAULTS, type ProcessConfig } from '#platform/config.js';
import { Election } from '#platform/etcd/election.js';
import { leaseTiming } from '#platform/etcd/lease.js';
import { NatsBus } from '#platform/nats/bus.js';
import { ClientService } from '#platform/nats/service.js';
import { ensureResultsStream } from '#platform/nats/results.js';
import { dropQueues, ensureShardsStream, QueueCounter } from '#platform/nats/shard-queues.js';
import { ensureTaskStateBucket } from '#platform/nats/task-state.js';
import { reportHeapOnSignal } from '#platform/heap.js';
import { createMetrics, metricsHost, startMetricsServer, type MetricsServer } from '#platform/metrics.js';
import { etcdCheck, healthProbe, loopCheck, natsCheck } from '#platform/health.js';
import { connectProcess } from '#platform/connect.js';
import { systemClock } from '#platform/clock.js';
import { withRetry } from '#platform/retry.js';
import { logger, type Logger } from '#platform/log.js';
import { watchStalls } from '#platform/stall.js';
import type { Store } from '#platform/ports.js';
import { dashboardHost, startDashboard, type Dashboard } from '#web/server.js';
import type { RebalanceOptions } from '#actors/leader/leader.js';
import { Master } from './master.js';

/** At most this often a master creates the JetStream streams again on finding one missing. */
const ENSURE_AGAIN_MS = 5000;

export interface MasterConfig extends ProcessConfig {
  /** How long a request stays parked while no leader is known (default DEFAULTS.parkMs). */
  parkMs?: number;
  /** false: do not join the `masters` queue group (a master that only leads; benchmarks use it). */
  serveClients?: boolean;
  rebalance?: RebalanceOptions;
  /** Copies of the results stream in a clustered JetStream (default 1). */
  resultsReplicas?: number;
  /** false: keep no warm standby while following (less memory; a takeover reads all state from etcd). */
  standby?: boolean;
}

export class MasterProcess {
  private service: ClientService | undefined;
  private metricsServer: MetricsServer | undefined;
  private dashboard: Dashboard | undefined;
  private stopping = false;
  private readonly stopped = new AbortController();

  private constructor(
    private readonly cfg: MasterConfig,
    private readonly nc: NatsConnection,
    private readonly store: Store,
    readonly master: Master,
    private readonly log: Logger,
  ) {}

  /** start connects, serves clients and joins the election; it resolves once our candidacy is observed. */
  static async start(cfg: MasterConfig): Promise<MasterProcess> {
    const { nc, store } = await connectProcess('master', cfg);
    const log = logger().child({ component: 'master' });
    watchStalls(logger());
    const metrics = createMetrics({ labels: { role: 'master', id: cfg.id } });
    reportHeapOnSignal(log, () => ({ dedupeEntries: metrics.dedupeEntries }));
    let p: MasterProcess | undefined;
    let election: Election | undefined;
    // A shard-queue stream found missing (a NATS cluster can lose one) is created again, with its siblings.
    let lastEnsure = -Infinity;
    const counter = new QueueCounter(nc, undefined, () => {
      if (!p || Date.now() - lastEnsure < ENSURE_AGAIN_MS) return;
      lastEnsure = Date.now();
      log.warn('the shard queues stream is missing; creating the JetStream streams again');
      void p.ensureResults();
    });
    const master = new Master({
      id: cfg.id,
      bus: new NatsBus(nc),
      store,
      clock: systemClock,
      log,
      metrics,
      elect: (cb) => (election = new Election(store, cfg.id, leaseTiming(cfg.ttlSeconds), cb)),
      parkMs: cfg.parkMs ?? DEFAULTS.parkMs,
      standby: cfg.standby !== false,
      ...(cfg.rebalance ? { rebalance: cfg.rebalance } : {}),
      shardQueues: { count: (id, n) => counter.count(id, n), drop: (id, n) => dropQueues(nc, id, n) },
      countError: (subject, err) => p?.service?.countError(subject, err),
    });
    p = new MasterProcess(cfg, nc, store, master, log);
    try {
      const health = healthProbe({ loop: loopCheck(), nats: natsCheck(nc), etcd: etcdCheck(() => election?.storeReachable ?? false) });
      if (cfg.metricsPort) p.metricsServer = await startMetricsServer(cfg.metricsPort, metrics.registry, { ...metricsHost(), health });
      if (cfg.httpPort) p.dashboard = await startDashboard({ nc, port: cfg.httpPort, id: cfg.id, ...dashboardHost() });
      if (cfg.serveClients !== false) p.service = await ClientService.start(nc, cfg.id, (subject, msg) => master.receive(subject, msg));
      await master.start();
    } catch (err) {
      await master.halt();
      await p.service?.stop();
      await p.metricsServer?.close();
      await p.dashboard?.close();
      await nc.close();
      store.close();
      throw err;
    }
    void p.ensureResults();
    return p;
  }

  get id(): string {
    return this.cfg.id;
  }

  /**
   * ensureResults creates or updates the results stream (and the shard queues stream and the task store's bucket), idempotently, from
   * every master (so it exists wherever the cluster runs), retrying in the
   * background while JetStream is unavailable: task results wait for it, the
   * control plane does not.
   */
  async ensureResults(): Promise<void> {
    const replicas = this.cfg.resultsReplicas ?? 1;
    // The shard queues and the task store's bucket ride along: the same JetStream, the same replicas.
    await withRetry(async () => {
      await ensureResultsStream(this.nc, { replicas });
      await ensureShardsStream(this.nc, { replicas });
      await ensureTaskStateBucket(this.nc, { replicas });
    }, {
      initialMs: 500,
      maxMs: 10_000,
      signal: this.stopped.signal,
      onRetry: (err, attempt) => {
        if (attempt === 1) this.log.warn({ err: (err as Error)?.message }, 'results stream unavailable (is JetStream on?); task results cannot be stored until it is');
      },
    }).catch(() => undefined);
  }

  /** stop takes no more client requests, stops the master (which hands on what it has), then closes the connections. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.stopped.abort();
    await this.service?.stop();
    await this.master.stop();
    await this.metricsServer?.close();
    await this.dashboard?.close();
    await this.nc.drain().catch(() => undefined);
    this.store.close();
  }
}
