// Injector: one fault at a time, against processes this run started, each
// signalled by its own PID. It keeps what the checker needs to know about the
// workers (when a SIGKILLed one was seen dead, when one was paused) and a
// record of every fault. Every fault heals itself before inject() returns:
// a killed process is started again with the same id, a paused one resumed,
// a stopped server started again; only one etcd member (and, in a NATS
// cluster, one nats-server node) is ever down. chaos injects faults from
// here, and so does soak, which keeps some processes out of its kills.

import type { LocalCluster } from '#devcluster/cluster.js';
import type { GafferClient } from '#client/client.js';
import { waitFor, type NatsServer } from '#devcluster/servers.js';
import type { StatusResult } from '#protocol/messages.js';
import { keys } from '#protocol/keys.js';
import { ClientSubject } from '#protocol/subjects.js';
import type { Store } from '#platform/ports.js';
import type { Incarnations } from './observe.js';
import { etcdHealthy, natsConnectionNames } from '#devcluster/probe.js';
import type { Rng } from './rng.js';
import { isRaftLeader } from './etcd.js';
import { sleep } from '#platform/clock.js';

export const FAULT_KINDS = [
  'kill-leader', 'kill-follower', 'kill-worker',
  'pause-leader', 'pause-follower', 'pause-worker',
  'restart-nats', 'restart-etcd',
  'drain-worker',
  'kill-nats',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** How long each fault keeps its target down: a random whole number of ms in [min, max]. */
export interface FaultTimings {
  /** SIGKILLed processes are restarted after [min, max] ms. */
  killDownMs: [number, number];
  /** SIGSTOPped processes are resumed after [min, max] ms (the TTL is 2 s, so sometimes past it). */
  pauseMs: [number, number];
  /** restart-nats: every node down for [min, max] ms. */
  natsDownMs: [number, number];
  /** kill-nats: one SIGKILLed node is started again after [min, max] ms. */
  natsKillDownMs: [number, number];
  etcdDownMs: [number, number];
}

/** Death: the injector SIGKILLed this worker; the exit was seen at `at`. */
export interface Death {
  worker: string;
  at: number;
}

/** Pause: the injector held this process in SIGSTOP from `from` to `to`. */
export interface Pause {
  target: string;
  from: number;
  to: number;
}

/** kill-nats takes one node of a NATS cluster down: it needs 3 nodes, so the other two keep JetStream's quorum. */
export const KILL_NATS_MIN_NODES = 3;

/** faultKinds is every kind this cluster can take: kill-nats only with a NATS cluster of KILL_NATS_MIN_NODES or more. */
export function faultKinds(natsNodes: number): FaultKind[] {
  return FAULT_KINDS.filter((k) => k !== 'kill-nats' || natsNodes >= KILL_NATS_MIN_NODES);
}

export interface FaultRecord {
  n: number;
  kind: FaultKind;
  target: string;
  /** Date.now() when the fault began (signal sent), when it was healed, when the cluster was seen recovered. */
  startedAt: number;
  healedAt: number;
  recoveredAt: number | null;
  /** How long the target was down or paused. */
  downMs: number;
  /** From the fault's start to recovery, and from its healing to recovery. */
  recoverMs: number | null;
  afterHealMs: number | null;
  /** From recovery until the client had as many fresh requests answered as it keeps in flight (it may be waiting out attempts sent during the fault). */
  flowingMs?: number | null;
  /** Why recovery was not reached by the deadline. */
  unrecovered?: string;
  error?: string;
}

/** schedule deals the kinds in shuffled rounds, so every kind comes up about equally often. */
export function schedule(rng: Rng, n: number, kinds: readonly FaultKind[] = FAULT_KINDS): FaultKind[] {
  const out: FaultKind[] = [];
  while (out.length < n) out.push(...rng.shuffle(kinds));
  return out.slice(0, n);
}

export class Injector {
  readonly deaths: Death[] = [];
  readonly pauses: Pause[] = [];
  readonly faults: FaultRecord[] = [];

  constructor(
    private readonly c: LocalCluster,
    private readonly client: GafferClient,
    private readonly rng: Rng,
    private readonly cfg: FaultTimings,
    private readonly store: Store,
    /** Updated at every restart, for the recovery check. */
    readonly since: Incarnations,
    /** The nats-servers that restart-nats and kill-nats take down: the cluster's own, unless it was given a server of the caller's. */
    private readonly nats: readonly NatsServer[] = c.natsCluster?.nodes ?? [],
  ) {}

  private async leader(): Promise<string> {
    const st = await waitFor('a leader to pick', () => this.client.call<StatusResult>(ClientSubject.status, {}, 2000), 15000);
    return st.leader;
  }

  private range([lo, hi]: [number, number]): number {
    return this.rng.between(lo, hi);
  }

  /** inject runs one fault to its end (healed) and records it; recovery is the caller's to wait for. */
  async inject(n: number, kind: FaultKind): Promise<FaultRecord> {
    const rec: FaultRecord = {
      n, kind, target: '?', startedAt: Date.now(), healedAt: 0, recoveredAt: null, downMs: 0, recoverMs: null, afterHealMs: null,
    };
    this.faults.push(rec);
    try {
      switch (kind) {
        case 'kill-leader':
        case 'kill-follower':
        case 'pause-leader':
        case 'pause-follower': {
          const leader = await this.leader();
          const id = kind.endsWith('leader') ? leader : this.rng.pick([...this.c.masters.keys()].filter((m) => m !== leader).sort());
          rec.target = id;
          if (kind.startsWith('kill')) await this.killAndRestart('master', id, rec);
          else await this.pause(this.c.masters.get(id)!, id, rec);
          break;
        }
        case 'kill-worker':
        case 'pause-worker': {
          const id = this.rng.pick([...this.c.workers.keys()].sort());
          rec.target = id;
          if (kind === 'kill-worker') await this.killAndRestart('worker', id, rec);
          else await this.pause(this.c.workers.get(id)!, id, rec);
          break;
        }
        case 'restart-nats':
          rec.target = this.nats.length > 1 ? 'every nats-server node' : 'nats-server';
          await this.restartNats(rec);
          break;
        case 'kill-nats':
          await this.killNats(rec);
          break;
        case 'restart-etcd':
          await this.restartEtcd(rec);
          break;
        case 'drain-worker':
          rec.target = this.rng.pick([...this.c.workers.keys()].sort());
          await this.drain(rec.target, rec);
          break;
      }
    } catch (err) {
      rec.error = (err as Error).message ?? String(err);
    }
    if (!rec.healedAt) rec.healedAt = Date.now();
    return rec;
  }

  /** killAndRestart SIGKILLs one master or worker, and starts it again with the same id after cfg.killDownMs. */
  async killAndRestart(role: 'master' | 'worker', id: string, rec: FaultRecord): Promise<void> {
    const child = (role === 'master' ? this.c.masters : this.c.workers).get(id)!;
    rec.startedAt = Date.now();
    await child.kill();
    const dead = Date.now();
    if (role === 'worker') this.deaths.push({ worker: id, at: dead });
    await sleep(this.range(this.cfg.killDownMs));
    // Anything the new incarnation writes to etcd is newer than this.
    this.since.set(id, (await waitFor('the etcd revision', () => this.store.range(keys.workersPrefix), 15000)).revision);
    if (role === 'master') this.c.startMaster(id);
    else this.c.startWorker(id);
    rec.healedAt = Date.now();
    rec.downMs = rec.healedAt - rec.startedAt;
  }

  private async pause(child: { pause(): void; resume(): void }, id: string, rec: FaultRecord): Promise<void> {
    const ms = this.range(this.cfg.pauseMs);
    rec.startedAt = Date.now();
    child.pause();
    const from = Date.now();
    try {
      await sleep(ms);
    } finally {
      const to = Date.now();
      child.resume();
      this.pauses.push({ target: id, from, to });
      rec.healedAt = Date.now();
      rec.downMs = to - from;
    }
  }

  /**
   * drain moves everything off a worker with handoffs, waits until it holds
   * nothing, then uncordons it: rebalance then moves work back to it, also
   * through handoffs, while the next faults come.
   */
  private async drain(id: string, rec: FaultRecord): Promise<void> {
    rec.startedAt = Date.now();
    await this.client.drain(id, 5000);
    await waitFor(`${id} to be drained`, async () => {
      const w = (await this.client.status()).workers.find((x) => x.id === id);
      return !w || (w.resources === 0 && !w.draining) || undefined;
    }, 30000).catch(() => undefined);
    await waitFor(`${id} to be uncordoned`, async () => (await this.client.uncordon(id), true), 15000);
    rec.healedAt = Date.now();
    rec.downMs = rec.healedAt - rec.startedAt;
  }

  /** restartNats stops every nats-server (the whole NATS cluster is down) and starts them again on the same ports. */
  private async restartNats(rec: FaultRecord): Promise<void> {
    const nodes = this.nats;
    if (nodes.length === 0) throw new Error('no nats-server of ours to restart');
    rec.startedAt = Date.now();
    await Promise.all(nodes.map((n) => n.child.stop()));
    await sleep(this.range(this.cfg.natsDownMs));
    await Promise.all(nodes.map((n) => n.start()));
    rec.healedAt = Date.now();
    rec.downMs = rec.healedAt - rec.startedAt;
  }

  /**
   * killNats SIGKILLs one node of the NATS cluster (never two: recovery saw
   * every node healthy before this fault) and starts it again on the same
   * ports and JetStream store. The target names the gaffer processes that
   * were connected to it, the leader starred: they must reconnect elsewhere.
   */
  private async killNats(rec: FaultRecord): Promise<void> {
    const nodes = this.nats;
    if (nodes.length < KILL_NATS_MIN_NODES) throw new Error(`kill-nats needs ${KILL_NATS_MIN_NODES} NATS nodes, the cluster has ${nodes.length}`);
    const node = this.rng.pick(nodes);
    const leader = await this.leader().catch(() => undefined);
    const names = (await natsConnectionNames(node.monitorUrl!)) ?? [];
    const on = names.map((n) => /^gaffer-(?:master|worker)-(.+)$/.exec(n)?.[1]).filter((id): id is string => !!id).sort();
    rec.target = `${node.name} [${on.map((id) => (id === leader ? `${id}*` : id)).join(' ')}]`;
    rec.startedAt = Date.now();
    await node.child.kill();
    await sleep(this.range(this.cfg.natsKillDownMs));
    await node.start();
    rec.healedAt = Date.now();
    rec.downMs = rec.healedAt - rec.startedAt;
  }

  private async restartEtcd(rec: FaultRecord): Promise<void> {
    const members = this.c.etcd!.members;
    // Quorum holds only if every other member is up; recovery checked that, check again.
    for (const m of members) if (!(await etcdHealthy(m.clientUrl))) throw new Error(`${m.name} is not healthy; not taking another member down`);
    const m = this.rng.pick(members);
    rec.target = (await isRaftLeader(m.clientUrl)) ? `${m.name} (raft leader)` : m.name;
    rec.startedAt = Date.now();
    await m.child.kill();
    await sleep(this.range(this.cfg.etcdDownMs));
    m.child.start();
    await waitFor(`${m.name} healthy again`, async () => (await etcdHealthy(m.clientUrl)) || undefined, 30000);
    rec.healedAt = Date.now();
    rec.downMs = rec.healedAt - rec.startedAt;
  }
}
