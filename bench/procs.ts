// Procs: the child processes the benchmark starts besides LocalCluster's own
// (floor responders, worker pools, a master with extra node flags), and what
// we read about them from /proc. Every one is a Child: signalled by its own
// PID only, and SIGKILLed if this process exits first.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Child } from '#devcluster/child.js';
import { CLI_PATH, type LocalCluster } from '#devcluster/cluster.js';

const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));

export const RESPONDER_PATH = here('./responder.js');
export const POOL_PATH = here('./worker-pool.js');

function logEnv(): NodeJS.ProcessEnv {
  return { ...process.env, GAFFER_LOG_LEVEL: process.env.GAFFER_LOG_LEVEL ?? 'info' };
}

export function startResponder(dir: string, name: string, args: string[]): Child {
  return new Child({ name, cmd: process.execPath, args: [RESPONDER_PATH, ...args], env: logEnv(), logFile: join(dir, `${name}.log`) }).start();
}

/**
 * startMaster starts a gaffer master like LocalCluster.startMaster does, but
 * with extra node flags (e.g. --cpu-prof), and registers it with the cluster
 * so cluster.stop() takes it down too.
 */
export function startMaster(c: LocalCluster, id: string, o: { nodeArgs?: string[]; extra?: string[] } = {}): Child {
  const child = new Child({
    name: id,
    cmd: process.execPath,
    args: [
      ...(o.nodeArgs ?? []),
      CLI_PATH, 'master', '--id', id,
      '--nats', c.natsUrl, '--etcd', c.etcdEndpoints,
      '--ttl', String(c.opts.ttlSeconds ?? 2),
      ...(o.extra ?? []),
    ],
    env: { ...logEnv(), ...c.opts.env },
    logFile: join(c.dir, `${id}.log`),
  }).start();
  c.masters.set(id, child);
  return child;
}

/** startPool starts one process running `count` Worker actors named `<prefix>-w<i>`. */
export function startPool(c: LocalCluster, prefix: string, count: number, capacity: number): Child {
  return new Child({
    name: prefix,
    cmd: process.execPath,
    args: [
      POOL_PATH, '--prefix', prefix, '--count', String(count), '--capacity', String(capacity),
      '--nats', c.natsUrl, '--etcd', c.etcdEndpoints, '--ttl', String(c.opts.ttlSeconds ?? 2),
    ],
    env: { ...logEnv(), ...c.opts.env },
    logFile: join(c.dir, `${prefix}.log`),
  }).start();
}

/** rssBytes reads VmRSS of one process from /proc/<pid>/status (resident set, not V8 heap). */
export function rssBytes(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** peakRssBytes reads VmHWM of one process from /proc/<pid>/status: the most resident memory it has held since it started. */
export function peakRssBytes(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** stopAll stops children in parallel and never throws. */
export async function stopAll(children: Array<Child | undefined>): Promise<void> {
  await Promise.all(children.map((c) => c?.stop().catch(() => undefined)));
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** cpuMs reads user+system CPU time of one process from /proc/<pid>/stat. */
export function cpuMs(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_MS;
  } catch {
    return NaN;
  }
}

/**
 * cpuShare runs fn and reports, per named process, the CPU it used meanwhile
 * as a percentage of one core (so 200 is both cores of this machine).
 */
export async function cpuShare<T>(
  pids: Record<string, number | undefined>,
  fn: () => Promise<T>,
): Promise<{ value: T; cpu: Record<string, number>; cpuMs: Record<string, number> }> {
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)]));
  const t0 = performance.now();
  const value = await fn();
  const wall = performance.now() - t0;
  const cpu: Record<string, number> = {};
  const used: Record<string, number> = {};
  for (const [k, pid] of Object.entries(pids)) {
    used[k] = cpuMs(pid) - before[k]!;
    cpu[k] = Math.round((used[k]! / wall) * 100);
  }
  return { value, cpu, cpuMs: used };
}

/** GAFFER_PROC names the gaffer processes among clusterPids' names (masters m*, workers w*). */
export const GAFFER_PROC = /^[mw]\d+$/;

/** cpuPerOp is the CPU (ms) that the gaffer processes used per successful operation. */
export function cpuPerOp(cpuMsByProc: Record<string, number>, ops: number): number | undefined {
  if (ops <= 0) return undefined;
  const total = Object.entries(cpuMsByProc).filter(([k]) => GAFFER_PROC.test(k)).reduce((n, [, ms]) => n + ms, 0);
  return Math.round((total / ops) * 1000) / 1000;
}

/** clusterPids names every process of a cluster, plus this one, for cpuShare. */
export function clusterPids(c: LocalCluster): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = { bench: process.pid };
  if (c.nats) out['nats-server'] = c.nats.child.pid;
  for (const m of c.etcd?.members ?? []) out[m.name] = m.child.pid;
  for (const [id, ch] of c.masters) out[id] = ch.pid;
  for (const [id, ch] of c.workers) out[id] = ch.pid;
  return out;
}
