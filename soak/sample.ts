// What the soak reads about each process, from outside it: RSS from
// /proc/<pid>/status, open file descriptors from /proc/<pid>/fd, the V8 heap
// (and, for a master, whether it leads) from a gaffer process's own /metrics
// (prom-client's default metrics and gaffer_leader), and
// NATS subscriptions per connection from nats-server's monitoring endpoint.
// Every reader answers null instead of throwing: a paused process does not
// answer HTTP, a killed one has no /proc entry, a restarting nats-server has
// no monitoring port, and a sample with a hole is still a sample.

import { readFile, readdir } from 'node:fs/promises';
import { etcdStatus } from '#harness/etcd.js';

const MiB = 1024 * 1024;

export interface Rss {
  rssMiB: number;
  /** Anonymous memory (heaps) and file-backed pages (mapped files: etcd's bbolt, code) of it, when the kernel says. */
  anonMiB: number | null;
  fileMiB: number | null;
}

/** rss reads VmRSS, RssAnon and RssFile (kB) from /proc/<pid>/status. */
export async function rss(pid: number): Promise<Rss | null> {
  try {
    const text = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number | null => {
      const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
      return m ? (Number(m[1]) * 1024) / MiB : null;
    };
    const total = kb('VmRSS');
    return total === null ? null : { rssMiB: total, anonMiB: kb('RssAnon'), fileMiB: kb('RssFile') };
  } catch {
    return null;
  }
}

/** fdCount counts the entries of /proc/<pid>/fd. */
export async function fdCount(pid: number): Promise<number | null> {
  try {
    return (await readdir(`/proc/${pid}/fd`)).length;
  } catch {
    return null;
  }
}

/**
 * promValue finds one sample of a metric in Prometheus text format: the first
 * line for `name` (with or without labels). Comments and other metrics that
 * merely start with the same name are skipped.
 */
export function promValue(text: string, name: string): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const value = rest.startsWith('{') ? rest.slice(rest.indexOf('}') + 1) : rest;
    const n = Number(value.trim().split(/\s+/)[0]);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

export interface Scrape {
  heapMiB: number | null;
  /** gaffer_leader: true while this master leads; null where the metric is absent (workers). */
  leader: boolean | null;
  /** Major (mark-sweep-compact) GCs so far: a heap curve between two of them is a ramp of garbage. */
  majorGcs: number | null;
}

/** promLabeled finds the sample of `name` whose labels include label="value". */
export function promLabeled(text: string, name: string, label: string, value: string): number | null {
  const needle = `${label}="${value}"`;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.indexOf('}');
    if (!line.slice(0, close).includes(needle)) continue;
    const n = Number(line.slice(close + 1).trim().split(/\s+/)[0]);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

/** scrape reads nodejs_heap_size_used_bytes (and gaffer_leader) from a gaffer process's /metrics; null if it does not answer. */
export async function scrape(metricsUrl: string, timeoutMs = 2000): Promise<Scrape | null> {
  try {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return null;
    const text = await res.text();
    const heap = promValue(text, 'nodejs_heap_size_used_bytes');
    const leader = promValue(text, 'gaffer_leader');
    return {
      heapMiB: heap === null ? null : heap / MiB,
      leader: leader === null ? null : leader === 1,
      majorGcs: promLabeled(text, 'nodejs_gc_duration_seconds_count', 'kind', 'major'),
    };
  } catch {
    return null;
  }
}

export interface ConnSubs {
  /** Connection name (gaffer sets gaffer-<role>-<id>); '' when unnamed. */
  name: string;
  subs: number;
  subjects: string[];
}

interface Connz {
  connections?: Array<{ name?: string; num_subscriptions?: number; subscriptions_list?: string[] }>;
}

/** connz asks nats-server's monitoring endpoint for every connection with its subscriptions. */
export async function connz(monitorUrl: string, timeoutMs = 2000): Promise<ConnSubs[] | null> {
  try {
    const res = await fetch(`${monitorUrl}/connz?subs=1&limit=100000`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return null;
    const body = (await res.json()) as Connz;
    return (body.connections ?? []).map((c) => ({
      name: c.name ?? '',
      subs: c.num_subscriptions ?? c.subscriptions_list?.length ?? 0,
      subjects: c.subscriptions_list ?? [],
    }));
  } catch {
    return null;
  }
}

/** subsByName adds up subscriptions per connection name (a process may hold more than one connection). */
export function subsByName(conns: readonly ConnSubs[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const c of conns) out.set(c.name, (out.get(c.name) ?? 0) + c.subs);
  return out;
}

/** connectionName is the NATS connection name a gaffer process of this role and id uses (src/platform/connect.ts). */
export function connectionName(role: 'master' | 'worker', id: string): string {
  return `gaffer-${role}-${id}`;
}

/** natsVarz reads nats-server's own totals: every subscription it holds (all clients, the soak's and the system's too) and its connections. */
export async function natsVarz(monitorUrl: string, timeoutMs = 2000): Promise<{ subscriptions: number; connections: number } | null> {
  try {
    const res = await fetch(`${monitorUrl}/varz`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return null;
    const v = (await res.json()) as { subscriptions?: number; connections?: number };
    return typeof v.subscriptions === 'number' ? { subscriptions: v.subscriptions, connections: v.connections ?? 0 } : null;
  } catch {
    return null;
  }
}

/**
 * etcdExtras: what an etcd member says about its own size, for explaining
 * its RSS (recorded, not judged): raft index, keys, the bbolt file's bytes in
 * use, and the Go heap in use.
 */
export async function etcdExtras(clientUrl: string, timeoutMs = 2000): Promise<Record<string, number | null> | null> {
  try {
    const [st, metrics] = await Promise.all([
      etcdStatus(clientUrl, timeoutMs),
      fetch(`${clientUrl}/metrics`, { signal: AbortSignal.timeout(timeoutMs) }).then((r) => r.text()),
    ]);
    const heap = promValue(metrics, 'go_memstats_heap_inuse_bytes');
    return {
      raftIndex: st.raftIndex ? Number(st.raftIndex) : null,
      keys: promValue(metrics, 'etcd_debugging_mvcc_keys_total'),
      dbInUseMiB: st.dbSizeInUse ? Number(st.dbSizeInUse) / MiB : null,
      goHeapMiB: heap === null ? null : heap / MiB,
    };
  } catch {
    return null;
  }
}
