// Leader: the one actor that changes cluster state. It exists only while this
// master leads. It loads workers, resources and assignments at one etcd
// revision, repairs and places what needs it, and then serves client commands
// from its mailbox, a batch at a time: plan every command in memory, commit
// the resulting operations in as few fenced transactions as etcd allows, and
// answer each request only after its commit (group commit).

import type { NatsConnection, Subscription } from 'nats';
import { Actor } from '../../src/actor.js';
import { keys, parseKey } from '../../src/keys.js';
import { packed } from '../../src/codec.js';
import { NotFoundError, NotLeaderError, UnavailableError } from '../../src/errors.js';
import { decodeWorkerInfo, LIST_PAGE_BYTES, LIST_PAGE_MAX, type AckMessage, type AssignEvent, type Resource } from '../../src/protocol.js';
import { toWire } from '../../src/errors.js';
import { ChainBrokenError, MAX_TXN_OPS, type ChainLink, type Guard, type Op, type Store, type WatchEvent } from '../../src/store.js';
import { subjects } from '../../src/subjects.js';
import { respond } from '../../src/bus.js';
import { publishEvent } from '../../src/events.js';
import type { ClientRequest } from '../../src/request.js';
import { logger, type Logger } from '../../src/log.js';
import type { GafferMetrics } from '../../src/metrics.js';
import { OK_CODE } from '../../src/metrics.js';
import { performance } from 'node:perf_hooks';
import { chunk, ClusterState, type Move, type StoredAssignment } from './state.js';
import { answerOf, Dedupe, type Outcome } from './dedupe.js';
import { loadCluster } from './loader.js';
import { WorkerLiveness } from './liveness.js';
import type { Prober } from '../../src/prober.js';


type Message =
  | { kind: 'client'; req: ClientRequest }
  | { kind: 'workers'; events: WatchEvent[] }
  | { kind: 'reconcile' }
  /** A worker we revoked has certainly fenced itself by now: move its work. */
  | { kind: 'fenced'; id: string; epoch: string };

export interface LeaderDeps {
  nc: NatsConnection;
  store: Store;
  id: string;
  guard: Guard;
  /** Every master in the election, leader first. */
  members: () => string[];
  /** Our fence failed: step down. Unanswered requests go back to be forwarded. */
  onFenceLost: (unanswered: ClientRequest[]) => void;
  log: Logger;
  metrics: GafferMetrics;
  /** Probes workers for liveness (shared with the master). */
  prober: Prober;
}


/** Largest batch taken from the mailbox at once; bounds reply latency under load. */
const MAX_BATCH = 1024;
/**
 * Batches whose commits may be in flight at once. Each transaction is chained
 * to the one before (keys.commitChain), so they apply in order or not at all;
 * planning the next batch need not wait for etcd.
 */
const PIPELINE_DEPTH = 4;

interface Answer {
  req: ClientRequest;
  /** Builds the reply once the batch is committed; revisionOf gives each touched name's commit revision. */
  build: (revisionOf: (name: string) => number | undefined) => unknown;
  /** A write's outcome, remembered under the request id (for re-sent requests). */
  outcome?: { name: string; outcome: Outcome };
}

export class Leader {
  private state = new ClusterState();
  private dedupe: Dedupe;
  private readonly actor: Actor<Message>;
  private watches: Array<{ close(): Promise<void> }> = [];
  private sub: Subscription | undefined;
  private loadRevision = 0;
  private readonly liveness: WorkerLiveness;
  /** Commits in flight, oldest first. */
  private pipeline: Array<Promise<void>> = [];
  /** The value the last transaction we sent wrote to keys.commitChain (undefined: the key must not exist). */
  private chainValue: Uint8Array | undefined;
  private chainSeq = 0;
  /** The last transaction sent; the next one waits on it if etcd applied them out of order. */
  private tail: Promise<unknown> = Promise.resolve();
  private degraded = false;
  private readonly log: Logger;

  constructor(private readonly d: LeaderDeps) {
    this.log = logger().child({ component: 'leader' });
    this.dedupe = new Dedupe(d.store, d.guard.createRevision);
    this.liveness = new WorkerLiveness(
      d.store,
      d.prober,
      this.log,
      (id) => this.state.workers.get(id)?.epoch,
      (id, epoch) => this.actor.send({ kind: 'fenced', id, epoch }),
    );
    this.actor = new Actor<Message>((batch) => this.receive(batch), {
      maxBatch: MAX_BATCH,
      onError: (err) => this.log.error({ err }, 'leader batch failed'),
    });
  }

  /** start loads the cluster at one revision and then serves; client requests sent meanwhile wait in the mailbox. */
  async start(): Promise<void> {
    await this.load();
    this.actor.start();
  }

  /** submit queues a client request; false once this leader has stopped. */
  submit(req: ClientRequest): boolean {
    return this.actor.send({ kind: 'client', req });
  }

  /** stop ends this term. The request in hand finishes; queued ones are returned to be forwarded. */
  async stop(): Promise<ClientRequest[]> {
    this.sub?.unsubscribe();
    this.liveness.stop();
    const rest = await this.actor.stop();
    await Promise.allSettled(this.pipeline);
    await this.closeWatches();
    return rest.flatMap((m) => (m.kind === 'client' ? [m.req] : []));
  }

  /** listen makes this leader reachable for forwarded requests. */
  listen(onMessage: Parameters<NatsConnection['subscribe']>[1]): void {
    this.sub = this.d.nc.subscribe(subjects.leader(this.d.id), onMessage);
  }

  private async closeWatches(): Promise<void> {
    await Promise.all(this.watches.splice(0).map((w) => w.close()));
  }

  private async load(): Promise<void> {
    await this.closeWatches();
    const { store } = this.d;
    const loaded = await loadCluster(store, this.d.guard.createRevision, this.log);
    const rev = loaded.revision;
    this.state = loaded.state;
    this.dedupe = loaded.dedupe;
    this.chainValue = loaded.chainValue;
    this.tail = Promise.resolve();
    this.loadRevision = rev;
    this.degraded = false;
    for (const [id, fence] of loaded.fenceMs) this.liveness.track(id, fence);
    this.watches.push(
      store.watch(keys.workersPrefix, rev + 1, (events) => this.actor.send({ kind: 'workers', events }), () => this.reset()),
      store.watch(keys.assignmentsPrefix, rev + 1, (events) => this.mirror(events), () => this.reset()),
    );
    // Repair and placement go through the mailbox first, ahead of any client request.
    this.actor.send({ kind: 'reconcile' });
  }

  private reset(): void {
    // A watch was canceled (compaction) or could not start: re-read everything before the next batch.
    this.degraded = true;
    this.actor.send({ kind: 'reconcile' });
  }

  /** mirror publishes each assignment change to the worker it concerns, as etcd reported it. */
  private mirror(events: WatchEvent[]): void {
    for (const ev of events) {
      const k = parseKey.assignment(ev.kv.key);
      const raw = ev.type === 'put' ? ev.kv.value : ev.prev?.value;
      if (!k || !raw) continue;
      const { epoch, term: _term, ...rec } = packed.decode(raw) as StoredAssignment;
      const resource: Resource = { ...rec, revision: ev.kv.modRevision };
      const msg: AssignEvent & { epoch: string } = { type: ev.type, resource, revision: ev.kv.modRevision, epoch };
      this.d.nc.publish(subjects.workerAssign(k.workerId), JSON.stringify(msg));
    }
  }

  private async receive(batch: Message[]): Promise<void> {
    if (this.degraded) {
      await Promise.allSettled(this.pipeline);
      try {
        await this.load();
      } catch (err) {
        const error = toWire(err);
        this.answer(batch.flatMap((m) => (m.kind === 'client' ? [{ req: m.req, reply: { ok: false, error } }] : [])));
        return;
      }
    }
    const answers: Answer[] = [];
    const batchSeen = new Map<string, Answer>();
    for (const m of batch) {
      if (m.kind === 'client') answers.push(this.plan(m.req, batchSeen));
      else if (m.kind === 'workers') this.applyWorkers(m.events);
      else if (m.kind === 'fenced' && this.state.workers.get(m.id)?.epoch === m.epoch) this.lose(m.id);
      // 'reconcile' only needs the flush below (repairs and pending placements).
    }
    this.state.placePending();
    const done = this.commit(answers);
    this.pipeline.push(done);
    void done.finally(() => this.pipeline.splice(this.pipeline.indexOf(done), 1));
    if (this.pipeline.length >= PIPELINE_DEPTH) await this.pipeline[0];
  }

  private applyWorkers(events: WatchEvent[]): void {
    for (const ev of events) {
      if (ev.kv.modRevision <= this.loadRevision) continue;
      const id = parseKey.worker(ev.kv.key);
      if (!id) continue;
      if (ev.type === 'delete') {
        const w = this.state.workers.get(id);
        if (w && this.liveness.deleted(id, w.epoch)) {
          // We revoked it; it may still run its tasks for up to its fence window. Place nothing there meanwhile.
          w.capacity = 0;
          continue;
        }
        this.lose(id);
        continue;
      }
      try {
        const info = decodeWorkerInfo(ev.kv.value);
        const isNew = !this.state.workers.has(id);
        this.state.workerUp(id, info.capacity, ev.kv.lease);
        this.liveness.track(id, info.fenceMs);
        if (isNew) {
          this.log.info({ worker: id, capacity: info.capacity }, 'worker joined');
          publishEvent(this.d.nc, this.d.id, 'worker.joined', { worker: id, capacity: info.capacity });
        }
      } catch (err) {
        this.log.warn({ key: ev.kv.key, err: (err as Error).message }, 'ignoring malformed worker');
      }
    }
  }

  private lose(id: string): void {
    this.log.info({ worker: id }, 'worker lost');
    publishEvent(this.d.nc, this.d.id, 'worker.lost', { worker: id });
    this.liveness.forget(id);
    this.state.workerDown(id);
  }

  /** plan applies one client command to the model and says how to answer it once committed. */
  private plan(req: ClientRequest, batchSeen: Map<string, Answer>): Answer {
    const c = req.command;
    if (c.op === 'add' || c.op === 'delete') {
      // A re-sent request gets its first outcome, whether from this batch or an earlier one.
      const again = batchSeen.get(req.id);
      if (again) return { req, build: again.build };
      const known = this.dedupe.lookup(req.id);
      if (known) return { req, build: () => answerOf(known, (name) => this.state.view(name)) };
      const a = this.planWrite(req, c);
      if (req.id) batchSeen.set(req.id, a);
      return a;
    }
    return this.planRead(req);
  }

  private planWrite(req: ClientRequest, c: Extract<ClientRequest['command'], { op: 'add' | 'delete' }>): Answer {
    const s = this.state;
    const stamp = (r: Resource, rev: (n: string) => number | undefined): Resource => ({ ...r, revision: rev(r.name) ?? r.revision });
    if (c.op === 'add') {
      const created = s.add(c.name, c.spec);
      const r = s.view(c.name)!;
      // The model's own record (never mutated, only replaced), not a copy: dedupe keeps it for a minute.
      const rec = s.resources.get(c.name)!.rec;
      return {
        req,
        build: (rev) => ({ ok: true, created, resource: stamp(r, rev) }),
        ...(created ? { outcome: { name: c.name, outcome: { op: 'add', created, rec } } } : {}),
      };
    }
    const r = s.remove(c.name);
    if (!r) return { req, build: () => ({ ok: false, error: new NotFoundError(`no resource named ${c.name}`).toWire() }) };
    const { revision: _r, ...rec } = r;
    return { req, build: (rev) => ({ ok: true, resource: stamp(r, rev) }), outcome: { name: c.name, outcome: { op: 'delete', rec } } };
  }

  private planRead(req: ClientRequest): Answer {
    const c = req.command;
    const s = this.state;
    const stamp = (r: Resource, rev: (n: string) => number | undefined): Resource => ({ ...r, revision: rev(r.name) ?? r.revision });
    switch (c.op) {
      case 'get': {
        const r = s.view(c.name);
        if (!r) return { req, build: () => ({ ok: false, error: new NotFoundError(`no resource named ${c.name}`).toWire() }) };
        return { req, build: (rev) => ({ ok: true, resource: stamp(r, rev) }) };
      }
      case 'list': {
        const page = s.page(c.after, c.limit ?? LIST_PAGE_MAX, LIST_PAGE_BYTES);
        return {
          req,
          build: (rev) => ({ ok: true, resources: page.resources.map((r) => stamp(r, rev)), ...(page.next ? { next: page.next } : {}) }),
        };
      }
      case 'status': {
        const workers = s.loads();
        return {
          req,
          build: () => ({ ok: true, leader: this.d.id, masters: this.d.members(), workers, pending: s.pending.size }),
        };
      }
      default:
        throw new Error(`unplanned command ${c.op}`);
    }
  }

  /**
   * commit writes every change of the batch, then answers. Reads are answered
   * only after a fenced transaction proves we still lead, so a deposed leader
   * never serves stale state.
   */
  private async commit(answers: Answer[]): Promise<void> {
    const units = this.state.flush();
    const moves = this.state.takeMoves();
    const revisions = new Map<string, number>();
    // Per transaction, one op is kept for the dedupe record and one for the chain link.
    const txns = chunk(units, MAX_TXN_OPS - 2);
    if (txns.length === 0 && answers.length > 0) txns.push([]);
    const outcomes = new Map<string, Array<[string, Outcome]>>();
    for (const a of answers) {
      if (!a.outcome || !a.req.id) continue;
      const list = outcomes.get(a.outcome.name) ?? [];
      list.push([a.req.id, a.outcome.outcome]);
      outcomes.set(a.outcome.name, list);
    }
    // Everything is sent now, in order; each transaction applies only after the one before it.
    const sent = txns.map((t) => {
      const ops = t.flatMap((u) => u.ops);
      const entries = t.flatMap((u) => outcomes.get(u.name) ?? []);
      if (entries.length > 0) ops.push(this.dedupe.op(entries));
      // A batch of reads only checks the chain (a cheap linearizable read in
      // etcd); a batch with writes advances it.
      const next = ops.length > 0 ? Buffer.from(`${this.d.guard.createRevision}:${++this.chainSeq}`) : undefined;
      const link = { key: keys.commitChain, expect: this.chainValue, ...(next ? { next } : {}) };
      if (next) this.chainValue = next;
      const rev = this.send(ops, link);
      rev.catch(() => undefined); // awaited below, in order
      return { t, entries, rev };
    });
    try {
      for (const { t, entries, rev: pending } of sent) {
        const rev = await pending;
        for (const u of t) revisions.set(u.name, rev);
        this.state.committed(t.map((u) => u.name), rev);
        this.dedupe.remember(entries, rev);
      }
    } catch (err) {
      const unanswered = answers.map((a) => a.req);
      if (err instanceof NotLeaderError) {
        this.log.warn({ err: err.message }, 'fence failed; stepping down');
        this.d.onFenceLost(unanswered);
        return;
      }
      // The outcome of the failed transaction is unknown (and later ones in
      // flight fail their chain link): forget the model and reload first.
      this.degraded = true;
      this.actor.send({ kind: 'reconcile' });
      const e = err instanceof UnavailableError ? err : new UnavailableError((err as Error).message, { cause: err });
      this.answer(answers.map((a) => ({ req: a.req, reply: { ok: false, error: e.toWire() } })));
      return;
    }
    this.answer(answers.map((a) => ({ req: a.req, reply: a.build((n) => revisions.get(n) ?? (this.state.resources.get(n)?.revision || undefined)) as { ok: boolean } })));
    this.d.metrics.setWorkerLoads(this.state.loads());
    this.announce(moves);
  }

  /**
   * send issues one chained transaction now. etcd may apply requests that
   * were in flight together in another order; then the chain check refuses
   * this one (it certainly did not apply), and once its predecessor has
   * committed it is sent again. If the predecessor failed, so does this.
   */
  private send(ops: Op[], link: ChainLink): Promise<number> {
    const prev = this.tail;
    const t0 = performance.now();
    const attempt = async (): Promise<number> => {
      for (let tries = 0; ; tries++) {
        try {
          const rev = await this.d.store.txn(this.d.guard, ops, link);
          this.d.metrics.observeCommit((performance.now() - t0) / 1000, ops.length);
          return rev;
        } catch (err) {
          if (!(err instanceof ChainBrokenError) || tries >= 3) throw err;
          await prev;
        }
      }
    };
    const rev = attempt();
    this.tail = rev;
    return rev;
  }

  /** answer replies to each client directly, records it, and acks forwarded requests to their masters. */
  private answer(done: Array<{ req: ClientRequest; reply: { ok: boolean; error?: { code: string } } }>): void {
    const now = performance.now();
    for (const { req, reply } of done) {
      respond(this.d.nc, req.reply, req.type, reply);
      this.d.metrics.observeRequest(req.subject, reply.ok ? OK_CODE : (reply.error?.code ?? 'INTERNAL'), (now - req.receivedAt) / 1000);
    }
    this.ack(done);
  }

  /** ack tells each forwarding master, in one message per batch, which of its requests were answered. */
  private ack(done: Array<{ req: ClientRequest; reply: { ok: boolean } }>): void {
    const byOrigin = new Map<string, AckMessage>();
    for (const { req, reply } of done) {
      if (!req.origin || req.origin === this.d.id || !req.id) continue;
      const ack = byOrigin.get(req.origin) ?? { ids: [], errors: [] };
      ack.ids.push(req.id);
      if (!reply.ok) ack.errors.push(req.id);
      byOrigin.set(req.origin, ack);
    }
    for (const [origin, ack] of byOrigin) this.d.nc.publish(subjects.masterAck(origin), packed.encode(ack));
  }

  private announce(moves: Move[]): void {
    const by = this.d.id;
    for (const m of moves) {
      const { name, id } = m;
      if (m.deleted) publishEvent(this.d.nc, by, 'resource.deleted', { name, id, worker: m.from });
      else if (m.from && m.from !== m.to) publishEvent(this.d.nc, by, 'resource.moved', { name, id, from: m.from, to: m.to });
      else if (m.to) publishEvent(this.d.nc, by, 'resource.placed', { name, id, worker: m.to });
      else publishEvent(this.d.nc, by, 'resource.pending', { name, id });
    }
  }
}
