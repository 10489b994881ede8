// Master: serves the client subjects in the `masters` queue group. Every
// request is validated here, then goes to the leader: straight into our own
// Leader actor when we lead, re-published to master.leader.<id> (keeping the
// client's reply subject, so the leader answers the client directly) when
// another master leads, or held until a leader is known, up to a hold timeout.

import { performance } from 'node:perf_hooks';
import type { Msg, NatsConnection } from 'nats';
import { requestType, respondError } from '../src/bus.js';
import { DEFAULTS, type ProcessConfig } from '../src/config.js';
import { Election, type Candidate } from '../src/election.js';
import { isPing, Prober } from '../src/prober.js';
import { NoLeaderError, toWire, UnavailableError } from '../src/errors.js';
import { ClientService } from '../src/service.js';
import { createMetrics, metricsHost, startMetricsServer, type GafferMetrics, type MetricsServer } from '../src/metrics.js';
import type { AckMessage } from '../src/protocol.js';
import { packed } from '../src/codec.js';
import { leaseTiming } from '../src/lease.js';
import { logger, type Logger } from '../src/log.js';
import type { Guard, Store } from '../src/store.js';
import { connectProcess } from '../src/connect.js';
import { subjects } from '../src/subjects.js';
import { publishEvent } from '../src/events.js';
import { ForeignReplyError, forwardedSubject, forwardHeaders, newRequestId, parseRequest, type ClientRequest } from '../src/request.js';
import { Leader } from './leader/leader.js';

export interface MasterConfig extends ProcessConfig {
  holdMs?: number;
  /** false: do not join the `masters` queue group (a master that only leads; benchmarks use it). */
  serveClients?: boolean;
}

interface Held {
  req: ClientRequest;
  timer: NodeJS.Timeout;
}

interface InFlight {
  req: ClientRequest;
  leader: string;
  at: number;
}

/** How long after a leader change we start probing the new leader. */
const LEADER_PROBE_GRACE_MS = 500;
/** A forwarded request with no ack after this long is sent again (dedupe makes that safe). */
const RESEND_AFTER_MS = 5000;
/** Past this nobody waits for the answer any more. */
const FORGET_AFTER_MS = 30000;

export class Master {
  private leader: Leader | undefined;
  private held: Held[] = [];
  /** Requests we forwarded and the leader has not acknowledged yet, by request id. */
  private readonly inflight = new Map<string, InFlight>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly prober: Prober;
  private probeStart: NodeJS.Timeout | undefined;
  /** Resolves once the last Leader we ran has stopped. */
  private retiring: Promise<unknown> = Promise.resolve();
  private service: ClientService | undefined;
  private readonly metrics: GafferMetrics;
  private metricsServer: MetricsServer | undefined;
  private stopping = false;
  private readonly election: Election;
  private readonly log: Logger;

  private constructor(
    private readonly cfg: MasterConfig,
    private readonly nc: NatsConnection,
    private readonly store: Store,
  ) {
    this.log = logger().child({ component: 'master' });
    this.metrics = createMetrics({ labels: { role: 'master', id: cfg.id } });
    this.prober = new Prober(nc);
    this.election = new Election(store, cfg.id, leaseTiming(cfg.ttlSeconds), {
      onLeaderChange: (l) => {
        this.log.info({ leader: l?.id }, 'leader is now');
        this.flushHeld();
        this.resend((f) => f.leader !== l?.id);
        this.probeLeader(l);
      },
      onStartedLeading: (guard) => void this.lead(guard),
      onStoppedLeading: (reason) => void this.unlead(reason),
    });
  }

  static async start(cfg: MasterConfig): Promise<Master> {
    const { nc, store } = await connectProcess('master', cfg);
    const m = new Master(cfg, nc, store);
    try {
      if (cfg.metricsPort) m.metricsServer = await startMetricsServer(cfg.metricsPort, m.metrics.registry, metricsHost());
      await m.run();
    } catch (err) {
      await m.metricsServer?.close();
      await nc.close();
      store.close();
      throw err;
    }
    return m;
  }

  get id(): string {
    return this.cfg.id;
  }

  get isLeader(): boolean {
    return this.leader !== undefined;
  }

  private async run(): Promise<void> {
    this.nc.subscribe(subjects.masterAck(this.cfg.id), { callback: (_err, msg) => this.onAck(msg) });
    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
    if (this.cfg.serveClients !== false) await this.serve();
    await this.election.start();
  }

  private async serve(): Promise<void> {
    this.service = await ClientService.start(this.nc, this.cfg.id, (subject, msg) => this.onClientMessage(subject, msg));
  }

  /** onAck retires acknowledged requests: the hop is timed, and errors the leader answered are counted here. */
  private onAck(msg: Msg): void {
    let ack: AckMessage;
    try {
      ack = packed.decode(msg.data) as AckMessage;
      if (!Array.isArray(ack?.ids)) throw new Error('ack without ids');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'ignoring malformed ack');
      return;
    }
    const now = performance.now();
    const failed = new Set(ack.errors ?? []);
    for (const id of ack.ids) {
      const f = this.inflight.get(id);
      if (!f) continue;
      this.inflight.delete(id);
      this.metrics.observeForward((now - f.req.receivedAt) / 1000);
      if (failed.has(id)) this.service?.countError(f.req.subject, new Error('answered with an error by the leader'));
    }
  }

  /** onClientMessage never throws: the services API would turn a throw into a bare error reply. */
  private onClientMessage(subject: string, msg: Msg): void {
    let req: ClientRequest;
    try {
      req = parseRequest(subject, msg.data, msg.headers, msg.reply);
    } catch (err) {
      this.service?.countError(subject, err as Error);
      this.metrics.observeRequest(subject, toWire(err).code, 0);
      if (err instanceof ForeignReplyError) return this.log.warn({ subject, err: err.message }, 'request dropped');
      return respondError(this.nc, msg.reply, requestType(msg.headers), err);
    }
    if (!req.id) req.id = newRequestId(this.cfg.id);
    this.route(req);
  }

  /**
   * probeLeader watches another master's leader subject. When NATS says nobody
   * subscribes there any more, that leader is dead (or cut off from NATS), and
   * we revoke its lease so the election moves on now instead of after its TTL.
   * A wrongly revoked leader is harmless: its next fenced write fails.
   */
  private probeLeader(l: Candidate | undefined): void {
    this.prober.unwatch('leader');
    clearTimeout(this.probeStart);
    if (!l || l.id === this.cfg.id || this.stopping) return;
    // A new leader subscribes as it learns it leads; give it a moment first.
    this.probeStart = setTimeout(() => {
      if (this.election.currentLeader?.key !== l.key) return;
      this.prober.watch('leader', subjects.leader(l.id), () => void this.revokeLeader(l));
    }, LEADER_PROBE_GRACE_MS);
    this.probeStart.unref();
  }

  private async revokeLeader(l: Candidate): Promise<void> {
    if (this.election.currentLeader?.key !== l.key) return;
    this.log.warn({ leader: l.id, lease: l.lease }, 'leader is gone from NATS; revoking its lease');
    try {
      await this.store.client.leaseClient.leaseRevoke({ ID: l.lease });
    } catch (err) {
      this.log.info({ err: (err as Error).message }, 'leader lease revoke failed (already gone?)');
    }
  }

  private onForwarded(msg: Msg): void {
    if (isPing(msg.headers)) return void msg.respond();
    try {
      this.route(parseRequest(forwardedSubject(msg.headers), msg.data, msg.headers, msg.reply));
    } catch (err) {
      if (err instanceof ForeignReplyError) return this.log.warn({ err: err.message }, 'forwarded request dropped');
      respondError(this.nc, msg.reply, requestType(msg.headers), err);
    }
  }

  /** route sends a request toward the leader: ours, another master's, or the hold queue. */
  private route(req: ClientRequest): void {
    if (this.leader?.submit(req)) return;
    const l = this.election.currentLeader;
    if (l && l.id !== this.cfg.id) return this.forward(req, l.id);
    this.hold(req);
  }

  /**
   * forward re-publishes the request to the leader, keeping the client's reply
   * subject, so the leader answers the client directly. Requests that came to
   * us from a client stay tracked until the leader acknowledges them.
   */
  private forward(req: ClientRequest, leader: string): void {
    const origin = req.origin ?? this.cfg.id;
    this.nc.publish(subjects.leader(leader), req.data, { reply: req.reply, headers: forwardHeaders(req, origin) });
    if (origin === this.cfg.id) this.inflight.set(req.id, { req, leader, at: Date.now() });
  }

  /** resend routes again every unacknowledged request that matches (to the new leader, ours, or the hold queue). */
  private resend(match: (f: InFlight) => boolean): void {
    for (const [id, f] of this.inflight) {
      if (!match(f)) continue;
      this.inflight.delete(id);
      this.route(f.req);
    }
  }

  private sweep(): void {
    const now = Date.now();
    // Forgotten by age since we received it, not since we last sent it, or it would be re-sent forever.
    const received = performance.now();
    for (const [id, f] of this.inflight) if (received - f.req.receivedAt > FORGET_AFTER_MS) this.inflight.delete(id);
    this.resend((f) => now - f.at > RESEND_AFTER_MS);
  }

  private hold(req: ClientRequest): void {
    const h: Held = {
      req,
      timer: setTimeout(() => {
        this.held = this.held.filter((x) => x !== h);
        // If we cannot reach etcd ourselves, say so: that is what the operator must fix.
        const err = this.election.storeReachable
          ? new NoLeaderError(`no leader elected within ${this.holdMs} ms`)
          : new UnavailableError(`etcd is unreachable from master ${this.cfg.id}; no leader can be confirmed`);
        respondError(this.nc, req.reply, req.type, err);
        this.service?.countError(req.subject, err);
        this.metrics.observeRequest(req.subject, err.code, (performance.now() - req.receivedAt) / 1000);
      }, this.holdMs),
    };
    this.held.push(h);
  }

  private get holdMs(): number {
    return this.cfg.holdMs ?? DEFAULTS.holdMs;
  }

  private flushHeld(): void {
    const held = this.held;
    this.held = [];
    for (const h of held) {
      clearTimeout(h.timer);
      this.route(h.req);
    }
  }

  private async lead(guard: Guard): Promise<void> {
    const leader = new Leader({
      nc: this.nc,
      store: this.store,
      id: this.cfg.id,
      guard,
      members: () => this.election.members,
      onFenceLost: (unanswered) => {
        this.election.stepDown('fence failed');
        // Our own requests go back in flight; the next leader gets them once it is known.
        for (const r of unanswered) this.route(r);
      },
      log: this.log,
      metrics: this.metrics,
      prober: this.prober,
    });
    this.leader = leader;
    this.metrics.setLeader(true);
    leader.listen({ callback: (_err, msg) => this.onForwarded(msg) });
    this.flushHeld();
    // A leader of ours that is still stopping (fenced, then restored) may have
    // commits in flight; ours would race them on the commit chain.
    await this.retiring;
    for (let delay = 100; this.leader === leader; delay = Math.min(2000, delay * 2)) {
      try {
        await leader.start();
        break;
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'leader could not load state; retrying');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    if (this.leader !== leader) return;
    this.log.info({ term: guard.createRevision }, 'leading');
    publishEvent(this.nc, this.cfg.id, 'leader.elected', { leader: this.cfg.id, term: guard.createRevision });
  }

  private async unlead(reason: string): Promise<void> {
    const leader = this.leader;
    if (!leader) return;
    this.leader = undefined;
    this.metrics.setLeader(false);
    this.log.warn({ reason }, 'no longer leading');
    publishEvent(this.nc, this.cfg.id, 'leader.resigned', { leader: this.cfg.id, reason });
    const stopped = leader.stop();
    this.retiring = stopped.catch(() => undefined);
    for (const r of await stopped) this.route(r);
  }

  /**
   * stop resigns at once (another master leads immediately), and hands every
   * request it still holds, queued or unacknowledged, to the next leader,
   * waiting at most the hold timeout for the acknowledgements.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.service?.stop();
    const leader = this.leader;
    this.leader = undefined;
    if (leader) {
      this.metrics.setLeader(false);
      publishEvent(this.nc, this.cfg.id, 'leader.resigned', { leader: this.cfg.id, reason: 'stopping' });
    }
    const rest = (await leader?.stop()) ?? [];
    await this.election.resign();
    for (const r of rest) this.route(r);
    const deadline = Date.now() + this.holdMs;
    while ((this.held.length > 0 || this.inflight.size > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    clearInterval(this.sweeper);
    clearTimeout(this.probeStart);
    this.prober.close();
    for (const h of this.held.splice(0)) clearTimeout(h.timer);
    await this.election.close();
    await this.metricsServer?.close();
    await this.nc.drain().catch(() => undefined);
    this.store.close();
  }
}
