// What the scale, million and crawl-scale parts read about a cluster besides
// their own requests: the status summary, the two masters started in turn, a
// process's heap after a forced GC (from its log), the fleet's fences from the
// workers' logs, etcd's database size (before and after compaction and
// defrag), and latency samples of one request at a time.

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Etcd3 } from 'etcd3';
import type { NatsConnection } from 'nats';
import { HeapLog } from '#platform/heap.js';
import { LeaderLog, WorkerLog } from '#platform/log.js';
import { waitFor } from '#devcluster/servers.js';
import { linesSince } from '#harness/logs.js';
import type { Child } from '#devcluster/child.js';
import type { LocalCluster } from '#devcluster/cluster.js';
import { ClientSubject } from '#protocol/subjects.js';
import type { StatusResult } from '#protocol/messages.js';
import { percentile } from '#lib/stats.js';
import { request } from './wire.js';

export async function status(nc: NatsConnection, timeoutMs = 5000): Promise<StatusResult> {
  return (await request(nc, ClientSubject.status, {}, { timeoutMs, gaffer: true })) as unknown as StatusResult;
}

/** twoMasters starts m1, waits for it to lead, then starts m2 and waits for it to join: the standby is m2. */
export async function twoMasters(cluster: LocalCluster, nc: NatsConnection): Promise<void> {
  cluster.startMaster('m1');
  await waitFor('m1 to lead', async () => (await status(nc, 1000)).leader === 'm1', 30000);
  cluster.startMaster('m2');
  await waitFor('m2 to join', async () => (await status(nc, 1000)).masters.length === 2, 30000);
}

/** running is how many resources the leader knows to run, and how many there are. */
export async function running(nc: NatsConnection): Promise<{ running: number; total: number }> {
  const s = await status(nc, 10000);
  return { running: s.resources?.byState.running ?? 0, total: s.resources?.total ?? 0 };
}

/** heapAfterGc: SIGUSR2 to a process started with --expose-gc, then the line it logs (src/platform/heap.ts). */
export async function heapAfterGc(child: Child, logFile: string): Promise<{ heapUsed: number; rss: number; dedupeEntries: number }> {
  const before = readFileSync(logFile, 'utf8').length;
  child.signal('SIGUSR2');
  return waitFor('the heap report', async () => {
    for (const line of readFileSync(logFile, 'utf8').slice(before).split('\n')) {
      if (!line.includes(HeapLog)) continue;
      const o = JSON.parse(line) as { heapUsed: number; rss: number; dedupeEntries?: number };
      return { heapUsed: o.heapUsed, rss: o.rss, dedupeEntries: o.dedupeEntries ?? 0 };
    }
    return undefined;
  }, 60000);
}

/** fleetHealth counts, in the pools' logs, worker incarnations that fenced themselves and leases lost. */
export function fleetHealth(files: string[]): { fences: number; leasesLost: number } {
  let fences = 0;
  let leasesLost = 0;
  for (const f of files) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    fences += text.split(`"msg":"${WorkerLog.fencing}"`).length - 1;
    leasesLost += text.split(`"msg":"${WorkerLog.leaseExpired}"`).length - 1;
  }
  return { fences, leasesLost };
}

/** builtState reads how a leader built its state (the warm standby, or a read of etcd), from the first such line of its log after byte `from`. */
export function builtState(logFile: string, from: number): { source: string; buildMs: number; readMs?: number } | undefined {
  let readMs: number | undefined;
  for (const line of linesSince(logFile, from).lines) {
    if (line.includes(`"${LeaderLog.read}"`)) readMs = (JSON.parse(line) as { readMs?: number }).readMs;
    if (!line.includes(`"${LeaderLog.built}"`)) continue;
    const o = JSON.parse(line) as { source?: string; buildMs?: number };
    return { source: o.source ?? '?', buildMs: o.buildMs ?? NaN, ...(readMs !== undefined ? { readMs } : {}) };
  }
  return undefined;
}

export interface EtcdSize {
  /** The database file as allocated, and the part of it in use, in bytes. */
  dbSize: number;
  dbSizeInUse: number;
  revision: number;
  /** After compacting everything before the current revision and defragmenting. */
  compacted?: { dbSize: number; dbSizeInUse: number; ms: number };
}

/** etcdSize reads etcd's database size; with compact, compacts at the current revision, defragments, and reads it again. */
export async function etcdSize(endpoints: string, compact: boolean): Promise<EtcdSize> {
  const client = new Etcd3({ hosts: endpoints.split(',') });
  try {
    const s = await client.maintenance.status();
    const out: EtcdSize = { dbSize: Number(s.dbSize), dbSizeInUse: Number(s.dbSizeInUse), revision: Number(s.header.revision) };
    if (!compact) return out;
    const t = performance.now();
    await client.kv.compact({ revision: s.header.revision, physical: true });
    await client.maintenance.defragment();
    const a = await client.maintenance.status();
    return { ...out, compacted: { dbSize: Number(a.dbSize), dbSizeInUse: Number(a.dbSizeInUse), ms: Math.round(performance.now() - t) } };
  } finally {
    client.close();
  }
}

export interface Latency {
  n: number;
  errors: number;
  p50: number;
  p99: number;
  max: number;
  firstError?: string;
}

/** sequential sends `n` requests one at a time and summarises their latency. */
export async function sequential(n: number, send: (i: number) => Promise<void>): Promise<Latency> {
  const ms: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    try {
      await send(i);
      ms.push(performance.now() - t);
    } catch (err) {
      errors++;
      firstError ??= (err as Error).message;
    }
  }
  const sorted = ms.sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    n: sorted.length,
    errors,
    p50: sorted.length ? r(percentile(sorted, 0.5)) : NaN,
    p99: sorted.length ? r(percentile(sorted, 0.99)) : NaN,
    max: sorted.length ? r(sorted[sorted.length - 1]!) : NaN,
    ...(firstError !== undefined ? { firstError } : {}),
  };
}
