// Master: the router in front of the leader. Every client request is
// validated here, then routed: straight into our own Leader actor when we
// lead, forwarded to master.leader.<id> when another master leads
// (forwarder.ts), or parked until a leader is known (parked.ts). It runs in
// the election, and starts a Leader when it wins.
//
// It talks to the outside only through the ports it is given (bus, store,
// clock, the election); process.ts composes it with NATS, etcd, the client
// service, metrics and the dashboard.

import { NoLeaderError, toWire, UnavailableError } from '#protocol/errors.js';
import { ForeignReplyError, newRequestId, parseRequest, requestType, type ClientRequest } from '#protocol/request.js';
import { subjects } from '#protocol/subjects.js';
import type { ElectionCallbacks, Election } from '#platform/etcd/election.js';
import { respondError } from '#platform/nats/bus.js';
import { Prober } from '#platform/nats/prober.js';
import { publishEvent } from '#platform/nats/events.js';
import type { GafferMetrics } from '#platform/metrics.js';
import type { Clock } from '#platform/clock.js';
import { withRetry } from '#platform/retry.js';
import type { Logger } from '#platform/log.js';
import type { Bus, BusMsg, Guard, Store } from '#platform/ports.js';
import type { HandOverRule } from '#actors/leader/hand-over.js';
import { Leader, type RebalanceOptions, type ShardQueueCounter } from '#actors/leader/leader.js';
import { Standby } from '#actors/leader/standby.js';
import { Forwarder } from './forwarder.js';
import { ParkedRequests } from './parked.js';
import { LeaderWatch } from './leader-watch.js';

/** Elector is what a master needs of its election (platform/etcd/election.ts); tests decide who leads. */
export type Elector = Pick<Election, 'currentLeader' | 'storeReachable' | 'members' | 'start' | 'stepDown' | 'handOver' | 'resign' | 'close'>;

export interface MasterDeps {
  id: string;
  bus: Bus;
  store: Store;
  clock: Clock;
  log: Logger;
  metrics: GafferMetrics;
  /** Joins the election with these callbacks. */
  elect(cb: ElectionCallbacks): Elector;
  /** How long a request stays parked while no leader is known before it is answered. */
  parkMs: number;
  /** Keep a warm standby of the leader's state while following. */
  standby: boolean;
  rebalance?: RebalanceOptions;
  /** The shard queues, for sharded resources' completion (JetStream). */
  shardQueues?: ShardQueueCounter;
  /** When a failed commit hands leadership over rather than reloads (default: the leader's). */
  handOver?: HandOverRule;
  /** A request of this subject was answered with an error (the client service counts them). */
  countError(subject: string, err: Error): void;
}

export class Master {
  private leader: Leader | undefined;
  private readonly forwarder: Forwarder;
  private readonly parked: ParkedRequests;
  private readonly prober: Prober;
  private readonly leaderWatch: LeaderWatch;
  private readonly election: Elector;
  private ackSub: { unsubscribe(): void } | undefined;
  /** Resolves once the last Leader we ran has stopped. */
  private retiring: Promise<unknown> = Promise.resolve();
  private stopping = false;
  /** The state a takeover starts from, kept current while we follow. */
  private standby: Standby | undefined;

  constructor(private readonly deps: MasterDeps) {
    const { bus, clock, id, log, metrics } = deps;
    this.prober = new Prober(bus, undefined, clock);
    this.forwarder = new Forwarder(bus, clock, id, {
      route: (req) => this.route(req),
      acked: (req, seconds, failed) => {
        metrics.observeForward(seconds);
        if (failed) deps.countError(req.subject, new Error('answered with an error by the leader'));
      },
    }, log);
    this.parked = new ParkedRequests(clock, deps.parkMs, (req) => this.expire(req));
    this.election = deps.elect({
      onLeaderChange: (l) => {
        log.info({ leader: l?.id }, 'leader is now');
        for (const req of this.parked.take()) this.route(req);
        this.forwarder.resend((leader) => leader !== l?.id);
        if (!this.stopping) this.leaderWatch.follow(l);
      },
      onStartedLeading: (guard) => void this.lead(guard),
      onStoppedLeading: (reason) => void this.unlead(reason),
    });
    this.leaderWatch = new LeaderWatch(id, this.prober, deps.store, clock, () => this.election.currentLeader, log);
  }

  get id(): string {
    return this.deps.id;
  }

  /** start listens for the leader's acks and joins the election; it resolves once our candidacy is observed. */
  async start(): Promise<void> {
    this.ackSub = this.deps.bus.subscribe(subjects.masterAck(this.deps.id), (msg) => this.forwarder.onAck(msg.data));
    this.warmUp();
    await this.election.start();
  }

  /** receive takes one client request off the wire. It never throws: the services API would turn a throw into a bare error reply. */
  receive(subject: string, msg: BusMsg): void {
    const { bus, clock, log, metrics } = this.deps;
    let req: ClientRequest;
    try {
      req = parseRequest(subject, msg.data, msg.headers, msg.reply, clock.now());
    } catch (err) {
      this.deps.countError(subject, err as Error);
      metrics.observeRequest(subject, toWire(err).code, 0);
      if (err instanceof ForeignReplyError) return log.warn({ subject, err: err.message }, 'request dropped');
      return respondError(bus, msg.reply, requestType(msg.headers), err);
    }
    if (!req.id) req.id = newRequestId(this.deps.id);
    this.route(req);
  }

  /** warmUp starts a standby, unless one runs, we lead, or it is off. */
  private warmUp(): void {
    if (!this.deps.standby || this.standby || this.leader || this.stopping) return;
    this.standby = new Standby(this.deps.store, this.deps.log, this.deps.clock).start();
  }

  /** route sends a request toward the leader: ours, another master's, or the parked requests. */
  private route(req: ClientRequest): void {
    if (this.leader?.submit(req)) return;
    const l = this.election.currentLeader;
    if (l && l.id !== this.deps.id) return this.forwarder.forward(req, l.id);
    this.parked.park(req);
  }

  /** expire answers a request parked past the wait. */
  private expire(req: ClientRequest): void {
    // If we cannot reach etcd ourselves, say so: that is what the operator must fix.
    const err = this.election.storeReachable
      ? new NoLeaderError(`no leader elected within ${this.parked.waitMs} ms`)
      : new UnavailableError(`etcd is unreachable from master ${this.deps.id}; no leader can be confirmed`);
    respondError(this.deps.bus, req.reply, req.type, err);
    this.deps.countError(req.subject, err);
    this.deps.metrics.observeRequest(req.subject, err.code, (this.deps.clock.now() - req.receivedAt) / 1000);
  }

  private async lead(guard: Guard): Promise<void> {
    const { bus, store, clock, id, log, metrics } = this.deps;
    const standby = this.standby;
    this.standby = undefined;
    const leader = new Leader({
      bus,
      store,
      clock,
      id,
      guard,
      members: () => this.election.members,
      storeReachable: () => this.election.storeReachable,
      onFenceLost: (unanswered) => {
        this.election.stepDown('fence failed');
        // Our own requests go back in flight; the next leader gets them once it is known.
        for (const r of unanswered) this.route(r);
      },
      onRejected: (req) => this.route(req),
      onHandOver: (unanswered) => {
        if (!this.election.handOver('commit failed; handed over to a standby')) return false;
        // They wait for the next leader, whose dedupe records give each its first outcome.
        for (const r of unanswered) this.route(r);
        return true;
      },
      log,
      metrics,
      prober: this.prober,
      ...(this.deps.rebalance ? { rebalance: this.deps.rebalance } : {}),
      ...(this.deps.shardQueues ? { shardQueues: this.deps.shardQueues } : {}),
      ...(this.deps.handOver ? { handOver: this.deps.handOver } : {}),
      ...(standby ? { warm: () => standby.take(guard) } : {}),
    });
    this.leader = leader;
    metrics.setLeader(true);
    leader.listen();
    for (const req of this.parked.take()) this.route(req);
    // A leader of ours that is still stopping (fenced, then restored) may have
    // commits in flight; ours would race them on the commit chain.
    await this.retiring;
    // A leader that was replaced meanwhile is not started; the retry then ends.
    await withRetry(async () => (this.leader === leader ? leader.start() : undefined), {
      initialMs: 100,
      maxMs: 2000,
      onRetry: (err) => log.warn({ err: (err as Error)?.message }, 'leader could not load state; retrying'),
    });
    // Handed over (and stopped) by start(), unless this Leader never started.
    standby?.stop();
    if (this.leader !== leader) return;
    log.info({ term: guard.createRevision }, 'leading');
    publishEvent(bus, id, 'leader.elected', { leader: id, term: guard.createRevision, workers: leader.workers });
  }

  private async unlead(reason: string): Promise<void> {
    const leader = this.leader;
    if (!leader) return;
    this.leader = undefined;
    this.deps.metrics.setLeader(false);
    this.deps.log.warn({ reason }, 'no longer leading');
    publishEvent(this.deps.bus, this.deps.id, 'leader.resigned', { leader: this.deps.id, reason });
    const stopped = leader.stop();
    this.retiring = stopped.catch(() => undefined);
    for (const r of await stopped) this.route(r);
    this.warmUp();
  }

  /**
   * stop resigns at once (another master leads immediately), and hands every
   * request it still has, queued or unacknowledged, to the next leader,
   * waiting at most the park time for the acknowledgements.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const { bus, clock, id, metrics } = this.deps;
    this.standby?.stop();
    const leader = this.leader;
    this.leader = undefined;
    if (leader) {
      metrics.setLeader(false);
      publishEvent(bus, id, 'leader.resigned', { leader: id, reason: 'stopping' });
    }
    const rest = (await leader?.stop()) ?? [];
    await this.election.resign();
    for (const r of rest) this.route(r);
    const deadline = clock.now() + this.parked.waitMs;
    while ((this.parked.size > 0 || this.forwarder.pending > 0) && clock.now() < deadline) await clock.sleep(10);
    await this.halt();
  }

  /** halt drops everything at once, handing nothing on: for a start that failed, and the end of stop. */
  async halt(): Promise<void> {
    this.stopping = true;
    this.standby?.stop();
    this.forwarder.stop();
    this.leaderWatch.stop();
    this.prober.close();
    this.parked.take();
    this.ackSub?.unsubscribe();
    await this.election.close();
  }
}
