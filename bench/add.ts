// Add: resource.add throughput and latency, through a follower and straight
// to the leader, at each in-flight level. Through the follower twice: with a
// plain NATS client (one nats.js request each, no retries: what `nats req`
// and any other language's client do, so every "no responders" or timeout
// shows in the cell's errors), and with the typed client (GafferClient, which
// re-sends what it safely can).
//
// The cluster: m1 starts first with --no-serve-clients and is given time to
// lead; m2 starts after it and serves clients, so every client request goes
// client -> m2 (validate, re-publish) -> m1 (group commit) -> client. The
// "leader" cells send to master.leader.m1 with the headers m2 would add.

import { performance } from 'node:perf_hooks';
import type { NatsConnection } from 'nats';
import { LocalCluster } from '#devcluster/cluster.js';
import { waitFor } from '#devcluster/servers.js';
import { ClientSubject } from '#protocol/subjects.js';
import { GafferClient } from '#client/client.js';
import { DEFAULTS } from '#platform/config.js';
import type { StatusResult } from '#protocol/messages.js';
import type { Child } from '#devcluster/child.js';
import type { BenchConfig } from './config.js';
import { runLoad, type Cell } from './load.js';
import { clusterPids, cpuPerOp, cpuShare, startMaster } from './procs.js';
import { benchConnect, request, runId, toLeader } from './wire.js';

export const LEADER = 'm1';
export const FOLLOWER = 'm2';

export interface AddResult {
  setup: { masters: string[]; leader: string; follower: string; workers: number; ttlSeconds: number };
  /** A plain NATS client through the follower. */
  follower: Record<string, Cell>;
  leader: Record<string, Cell>;
  /** The typed client (GafferClient) through the follower. */
  typed: Record<string, Cell>;
}

export interface FollowerCluster {
  cluster: LocalCluster;
  nc: NatsConnection;
  leader: Child;
  /** performance.now() when the leader process was spawned. */
  leaderSpawnedAt: number;
  stop(): Promise<void>;
}

/** followerCluster brings up the m1-leads, m2-forwards cluster; nodeArgs go to the leader's node (e.g. --cpu-prof). */
export async function followerCluster(cfg: BenchConfig, o: { nodeArgs?: string[]; workers?: number } = {}): Promise<FollowerCluster> {
  const cluster = await LocalCluster.start({ masters: 0, workers: 0, ttlSeconds: cfg.ttlSeconds, capacity: 1_000_000 });
  let nc: NatsConnection | undefined;
  try {
    const leaderSpawnedAt = performance.now();
    const leader = startMaster(cluster, LEADER, { nodeArgs: o.nodeArgs ?? [], extra: ['--no-serve-clients'] });
    const conn = await benchConnect(cluster.natsUrl, 'bench-add');
    nc = conn;
    await waitFor(`${LEADER} to lead`, async () => {
      const s = (await toLeader(conn, LEADER, ClientSubject.status, {}, 1000)) as unknown as StatusResult;
      return s.leader === LEADER;
    }, 30000);
    cluster.startMaster(FOLLOWER);
    for (let i = 1; i <= (o.workers ?? 2); i++) cluster.startWorker(`w${i}`);
    await waitFor(`${FOLLOWER} to forward to ${LEADER} with every worker live`, async () => {
      const s = (await request(conn, ClientSubject.status, {}, { timeoutMs: 1000, gaffer: true })) as unknown as StatusResult;
      return s.leader === LEADER && s.masters.length === 2 && s.workers.length === (o.workers ?? 2);
    }, 30000);
    return {
      cluster,
      nc: conn,
      leader,
      leaderSpawnedAt,
      stop: async () => {
        await conn.close().catch(() => undefined);
        await cluster.stop(cfg.keepLogs);
      },
    };
  } catch (err) {
    await nc?.close().catch(() => undefined);
    await cluster.stop(cfg.keepLogs);
    throw err;
  }
}

/** addCell runs one resource.add cell through the follower (the client subject, plain or typed) or straight to the leader. */
export function addCell(nc: NatsConnection, cfg: BenchConfig, via: 'follower' | 'leader' | 'typed', inflight: number, tag = ''): Promise<Cell> {
  const typed = via === 'typed' ? new GafferClient(nc, { timeoutMs: DEFAULTS.requestTimeoutMs }) : undefined;
  return runLoad({ inflight, warmupMs: cfg.warmupMs, durationMs: cfg.cellMs }, async (i) => {
    const name = `a-${runId}${tag}-${via}-${inflight}-${i}`;
    if (typed) await typed.add(name);
    else if (via === 'follower') await request(nc, ClientSubject.add, { name }, { gaffer: true });
    else await toLeader(nc, LEADER, ClientSubject.add, { name });
  });
}

export async function add(cfg: BenchConfig, log: (s: string) => void): Promise<AddResult> {
  const fc = await followerCluster(cfg);
  try {
    const out: AddResult = {
      setup: { masters: [LEADER, FOLLOWER], leader: LEADER, follower: FOLLOWER, workers: 2, ttlSeconds: cfg.ttlSeconds },
      follower: {},
      leader: {},
      typed: {},
    };
    for (const via of ['follower', 'typed', 'leader'] as const) {
      for (const inflight of cfg.levels) {
        const { value: cell, cpu, cpuMs } = await cpuShare(clusterPids(fc.cluster), () => addCell(fc.nc, cfg, via, inflight));
        cell.cpu = cpu;
        const perOp = cpuPerOp(cpuMs, cell.totalOk);
        if (perOp !== undefined) cell.cpuMsPerOp = perOp;
        out[via][String(inflight)] = cell;
        log(`add via ${via}@${inflight}: ${cell.throughput}/s p50 ${cell.p50} ms p99 ${cell.p99} ms p99.9 ${cell.p999} ms, ${cell.cpuMsPerOp ?? '?'} ms CPU/add${cell.errors ? ` (${cell.errors} errors: ${cell.firstError})` : ''}`);
      }
    }
    return out;
  } finally {
    await fc.stop();
  }
}
