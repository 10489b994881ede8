// Master: serves the client subjects in the `masters` queue group. Every
// request is validated here, then routed to the leader: straight into our own
// Leader actor when we lead, forwarded to master.leader.<id> when another
// master leads (forwarder.ts), or held until a leader is known (hold.ts). It
// runs in the election, and starts a Leader when it wins.

import type { Msg, NatsConnection } from 'nats';
import { subjects } from '#protocol/subjects.js';
import { NoLeaderError, toWire, UnavailableError } from '#protocol/errors.js';
import { ForeignReplyError, newRequestId, parseRequest, requestType, type ClientRequest } from '#protocol/request.js';
import { DEFAULTS, type ProcessConfig } from '#platform/config.js';
import { Election } from '#platform/etcd/election.js';
import { leaseTiming } from '#platform/etcd/lease.js';
import { NatsBus, respondError } from '#platform/nats/bus.js';
import { Prober } from '#platform/nats/prober.js';
import { ClientService } from '#platform/nats/service.js';
import { ensureResultsStream } from '#platform/nats/results.js';
import { publishEvent } from '#platform/nats/events.js';
import { reportHeapOnSignal } from '#platform/heap.js';
import { createMetrics, metricsHost, startMetricsServer, type GafferMetrics, type MetricsServer } from '#platform/metrics.js';
import { connectProcess } from '#platform/connect.js';
import { etcdCheck, healthProbe, loopCheck, natsCheck } from '#platform/health.js';
import { dashboardHost, startDashboard, type Dashboard } from '#web/server.js';
import { systemClock, type Clock } from '#platform/clock.js';
import { withRetry } from '#platform/retry.js';
import { logger, type Logger } from '#platform/log.js';
import { watchStalls } from '#platform/stall.js';
import type { Guard, Store } from '#platform/ports.js';
import { Leader, type RebalanceOptions } from '#actors/leader/leader.js';
import { Standby } from '#actors/leader/standby.js';
import { Forwarder } from './forwarder.js';
import { HoldQueue } from './hold.js';
import { LeaderWatch } from './leader-watch.js';

export interface MasterConfig extends ProcessConfig {
  holdMs?: number;
  /** false: do not join the `masters` queue group (a master that only leads; benchmarks use it). */
  serveClients?: boolean;
  rebalance?: RebalanceOptions;
  /** Copies of the results stream in a clustered JetStream (default 1). */
  resultsReplicas?: number;
  /** false: keep no warm standby while following (less memory; a takeover reads all state from etcd). */
  standby?: boolean;
}

export class Master {
  private leader: Leader | undefined;
  private readonly bus: NatsBus;
  private readonly clock: Clock = systemClock;
  private readonly forwarder: Forwarder;
  private readonly hold: HoldQueue;
  private readonly prober: Prober;
  private readonly leaderWatch: LeaderWatch;
  /** Resolves once the last Leader we ran has stopped. */
  private retiring: Promise<unknown> = Promise.resolve();
  private service: ClientService | undefined;
  private readonly metrics: GafferMetrics;
  private metricsServer: MetricsServer | undefined;
  private dashboard: Dashboard | undefined;
  private stopping = false;
  private readonly stopped = new AbortController();
  private readonly election: Election;
  private readonly log: Logger;
  /** The state a takeover starts from, kept current while we follow. */
  private standby: Standby | undefined;

  private constructor(
    private readonly cfg: MasterConfig,
    private readonly nc: NatsConnection,
    private readonly store: Store,
  ) {
    this.log = logger().child({ component: 'master' });
    watchStalls(logger());
    this.bus = new NatsBus(nc);
    this.metrics = createMetrics({ labels: { role: 'master', id: cfg.id } });
    reportHeapOnSignal(this.log, () => ({ dedupeEntries: this.metrics.dedupeEntries }));
    this.prober = new Prober(this.bus, undefined, this.clock);
    this.forwarder = new Forwarder(this.bus, this.clock, cfg.id, {
      route: (req) => this.route(req),
      acked: (req, seconds, failed) => {
        this.metrics.observeForward(seconds);
        if (failed) this.service?.countError(req.subject, new Error('answered with an error by the leader'));
      },
    }, this.log);
    this.hold = new HoldQueue(this.clock, cfg.holdMs ?? DEFAULTS.holdMs, (req) => this.expire(req));
    this.election = new Election(store, cfg.id, leaseTiming(cfg.ttlSeconds), {
      onLeaderChange: (l) => {
        this.log.info({ leader: l?.id }, 'leader is now');
        for (const req of this.hold.take()) this.route(req);
        this.forwarder.resend((leader) => leader !== l?.id);
        if (!this.stopping) this.leaderWatch.follow(l);
      },
      onStartedLeading: (guard) => void this.lead(guard),
      onStoppedLeading: (reason) => void this.unlead(reason),
    });
    this.leaderWatch = new LeaderWatch(cfg.id, this.prober, store, this.clock, () => this.election.currentLeader, this.log);
  }

  static async start(cfg: MasterConfig): Promise<Master> {
    const { nc, store } = await connectProcess('master', cfg);
    const m = new Master(cfg, nc, store);
    try {
      const health = healthProbe({ loop: loopCheck(), nats: natsCheck(nc), etcd: etcdCheck(() => m.election.storeReachable) });
      if (cfg.metricsPort) m.metricsServer = await startMetricsServer(cfg.metricsPort, m.metrics.registry, { ...metricsHost(), health });
      if (cfg.httpPort) m.dashboard = await startDashboard({ nc, port: cfg.httpPort, id: cfg.id, ...dashboardHost() });
      await m.run();
    } catch (err) {
      m.forwarder.stop();
      await m.metricsServer?.close();
      await m.dashboard?.close();
      await nc.close();
      store.close();
      throw err;
    }
    return m;
  }

  get id(): string {
    return this.cfg.id;
  }

  private async run(): Promise<void> {
    this.bus.subscribe(subjects.masterAck(this.cfg.id), (msg) => this.forwarder.onAck(msg.data));
    if (this.cfg.serveClients !== false) {
      this.service = await ClientService.start(this.nc, this.cfg.id, (subject, msg) => this.onClientMessage(subject, msg));
    }
    this.warmUp();
    await this.election.start();
    void this.ensureResults();
  }

  /**
   * ensureResults creates or updates the results stream, idempotently, from
   * every master (so it exists wherever the cluster runs), retrying in the
   * background while JetStream is unavailable: task results wait for it, the
   * control plane does not.
   */
  private async ensureResults(): Promise<void> {
    await withRetry(() => ensureResultsStream(this.nc, { replicas: this.cfg.resultsReplicas ?? 1 }), {
      initialMs: 500,
      maxMs: 10_000,
      signal: this.stopped.signal,
      onRetry: (err, attempt) => {
        if (attempt === 1) this.log.warn({ err: (err as Error)?.message }, 'results stream unavailable (is JetStream on?); task results cannot be stored until it is');
      },
    }).catch(() => undefined);
  }

  /** onClientMessage never throws: the services API would turn a throw into a bare error reply. */
  private onClientMessage(subject: string, msg: Msg): void {
    let req: ClientRequest;
    try {
      req = parseRequest(subject, msg.data, msg.headers, msg.reply, this.clock.now());
    } catch (err) {
      this.service?.countError(subject, err as Error);
      this.metrics.observeRequest(subject, toWire(err).code, 0);
      if (err instanceof ForeignReplyError) return this.log.warn({ subject, err: err.message }, 'request dropped');
      return respondError(this.bus, msg.reply, requestType(msg.headers), err);
    }
    if (!req.id) req.id = newRequestId(this.cfg.id);
    this.route(req);
  }

  /** warmUp starts a standby, unless one runs, we lead, or it is off. */
  private warmUp(): void {
    if (this.cfg.standby === false || this.standby || this.leader || this.stopping) return;
    this.standby = new Standby(this.store, this.log, this.clock).start();
  }

  /** route sends a request toward the leader: ours, another master's, or the hold queue. */
  private route(req: ClientRequest): void {
    if (this.leader?.submit(req)) return;
    const l = this.election.currentLeader;
    if (l && l.id !== this.cfg.id) return this.forwarder.forward(req, l.id);
    this.hold.hold(req);
  }

  /** expire answers a request held past the hold time. */
  private expire(req: ClientRequest): void {
    // If we cannot reach etcd ourselves, say so: that is what the operator must fix.
    const err = this.election.storeReachable
      ? new NoLeaderError(`no leader elected within ${this.hold.holdMs} ms`)
      : new UnavailableError(`etcd is unreachable from master ${this.cfg.id}; no leader can be confirmed`);
    respondError(this.bus, req.reply, req.type, err);
    this.service?.countError(req.subject, err);
    this.metrics.observeRequest(req.subject, err.code, (this.clock.now() - req.receivedAt) / 1000);
  }

  private async lead(guard: Guard): Promise<void> {
    const standby = this.standby;
    this.standby = undefined;
    const leader = new Leader({
      bus: this.bus,
      store: this.store,
      clock: this.clock,
      id: this.cfg.id,
      guard,
      members: () => this.election.members,
      onFenceLost: (unanswered) => {
        this.election.stepDown('fence failed');
        // Our own requests go back in flight; the next leader gets them once it is known.
        for (const r of unanswered) this.route(r);
      },
      onRejected: (req) => this.route(req),
      log: this.log,
      metrics: this.metrics,
      prober: this.prober,
      ...(this.cfg.rebalance ? { rebalance: this.cfg.rebalance } : {}),
      ...(standby ? { warm: () => standby.take(guard) } : {}),
    });
    this.leader = leader;
    this.metrics.setLeader(true);
    leader.listen();
    for (const req of this.hold.take()) this.route(req);
    // A leader of ours that is still stopping (fenced, then restored) may have
    // commits in flight; ours would race them on the commit chain.
    await this.retiring;
    // A leader that was replaced meanwhile is not started; the retry then ends.
    await withRetry(async () => (this.leader === leader ? leader.start() : undefined), {
      initialMs: 100,
      maxMs: 2000,
      onRetry: (err) => this.log.warn({ err: (err as Error)?.message }, 'leader could not load state; retrying'),
    });
    // Handed over (and stopped) by start(), unless this Leader never started.
    standby?.stop();
    if (this.leader !== leader) return;
    this.log.info({ term: guard.createRevision }, 'leading');
    publishEvent(this.bus, this.cfg.id, 'leader.elected', { leader: this.cfg.id, term: guard.createRevision });
  }

  private async unlead(reason: string): Promise<void> {
    const leader = this.leader;
    if (!leader) return;
    this.leader = undefined;
    this.metrics.setLeader(false);
    this.log.warn({ reason }, 'no longer leading');
    publishEvent(this.bus, this.cfg.id, 'leader.resigned', { leader: this.cfg.id, reason });
    const stopped = leader.stop();
    this.retiring = stopped.catch(() => undefined);
    for (const r of await stopped) this.route(r);
    this.warmUp();
  }

  /**
   * stop resigns at once (another master leads immediately), and hands every
   * request it still holds, queued or unacknowledged, to the next leader,
   * waiting at most the hold timeout for the acknowledgements.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.stopped.abort();
    this.standby?.stop();
    await this.service?.stop();
    const leader = this.leader;
    this.leader = undefined;
    if (leader) {
      this.metrics.setLeader(false);
      publishEvent(this.bus, this.cfg.id, 'leader.resigned', { leader: this.cfg.id, reason: 'stopping' });
    }
    const rest = (await leader?.stop()) ?? [];
    await this.election.resign();
    for (const r of rest) this.route(r);
    const deadline = this.clock.now() + this.hold.holdMs;
    while ((this.hold.size > 0 || this.forwarder.pending > 0) && this.clock.now() < deadline) await this.clock.sleep(10);
    this.forwarder.stop();
    this.leaderWatch.stop();
    this.prober.close();
    this.hold.take();
    await this.election.close();
    await this.metricsServer?.close();
    await this.dashboard?.close();
    await this.nc.drain().catch(() => undefined);
    this.store.close();
  }
}
