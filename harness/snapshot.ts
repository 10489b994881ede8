// Snapshot: what the cluster says it holds (the list) and what every worker
// says it runs, and the check that the two agree: each listed resource runs on
// exactly its assigned worker, with its id, and nothing else runs. chaos and
// fuzz wait for that agreement after their faults and requests.

import type { LocalCluster } from '#devcluster/cluster.js';
import type { GafferClient } from '#client/client.js';
import type { ListResult, WorkerStatusResult } from '#protocol/messages.js';
import { ClientSubject, subjects } from '#protocol/subjects.js';
import { parseShard, shardId, shardName } from '#protocol/shards.js';

export interface Listed {
  name: string;
  id: string;
  worker: string | null;
  /** The lifecycle state; completed, failed and scheduled (between runs) resources run nowhere, restarting ones may wait out a backoff. */
  state?: string;
  /** A sharded resource's own record: it runs nowhere itself; its shards are listed beside it as `<name>/<index>`. */
  sharded?: true;
}

const NOT_RUNNING: ReadonlySet<string | undefined> = new Set(['completed', 'failed', 'scheduled']);

export interface Finding {
  kind: 'lost' | 'resurrected' | 'reanswered' | 'orphaned';
  name: string;
  detail: string;
  /** Requests and log lines that show it. */
  evidence: string[];
}

export interface RunningTask {
  name: string;
  id: string;
}

/** Snapshot: the list and what every worker says it runs (null: the worker did not answer). */
export interface Snapshot {
  at: number;
  list: Listed[];
  running: Record<string, RunningTask[] | null>;
}

/**
 * mismatches lists every way the snapshot differs from "each listed resource
 * runs on exactly its assigned worker, with its id, and nothing else runs",
 * ignoring the names in `skip` (requests on them are in flight or just ended).
 */
export function mismatches(s: Snapshot, skip: ReadonlySet<string> = new Set()): Finding[] {
  const out: Finding[] = [];
  const listed = new Map(s.list.map((r) => [r.name, r]));
  const where = new Map<string, Array<{ worker: string; id: string }>>();
  for (const [worker, tasks] of Object.entries(s.running)) {
    for (const t of tasks ?? []) where.set(t.name, [...(where.get(t.name) ?? []), { worker, id: t.id }]);
  }
  const orphan = (name: string, detail: string): void => void out.push({ kind: 'orphaned', name, detail, evidence: [] });
  // A shard is judged by its own entry, and is skipped with its resource.
  const skipped = (name: string): boolean => skip.has(name) || skip.has(parseShard(name)?.name ?? '');
  for (const [name, at] of [...where].sort()) {
    if (skipped(name)) continue;
    const r = listed.get(name);
    for (const t of at) {
      if (!r) orphan(name, `runs on ${t.worker} (id ${t.id}) but is not listed`);
      else if (r.id !== t.id) orphan(name, `runs on ${t.worker} with id ${t.id}, but the listed id is ${r.id}`);
      else if (r.worker !== t.worker) orphan(name, `runs on ${t.worker} but is assigned to ${r.worker ?? 'no worker'}`);
    }
  }
  for (const r of [...s.list].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (skipped(r.name) || r.sharded || NOT_RUNNING.has(r.state) || r.state === 'restarting') continue;
    if (r.worker === null) {
      orphan(r.name, `listed (id ${r.id}) but pending: assigned to no worker`);
      continue;
    }
    const tasks = s.running[r.worker];
    if (tasks === null) orphan(r.name, `listed on ${r.worker}, which did not answer`);
    else if (!(tasks ?? []).some((t) => t.name === r.name && t.id === r.id)) orphan(r.name, `listed (id ${r.id}) on ${r.worker} but does not run there`);
  }
  return out;
}

/** Convergence: a snapshot's verdict; when not converged, why in one line, and the mismatches when there were any. */
export type Convergence = { ok: true } | { ok: false; why: string; mismatches?: Finding[] };

/** convergence judges a snapshot: every worker answered, and mismatches (ignoring `skip`) finds nothing. */
export function convergence(s: Snapshot, skip: ReadonlySet<string>): Convergence {
  const silent = Object.entries(s.running).filter(([, t]) => t === null).map(([w]) => w);
  if (silent.length > 0) return { ok: false, why: `${silent.join(', ')} did not answer worker status` };
  const mm = mismatches(s, skip);
  if (mm.length === 0) return { ok: true };
  const first = mm.slice(0, 3).map((m) => `${m.name} ${m.detail}`).join('; ');
  return { ok: false, why: `not converged: ${first}${mm.length > 3 ? ` (+${mm.length - 3} more)` : ''}`, mismatches: mm };
}

/** snapshot reads the list, then asks every worker what it runs (null when it does not answer). */
export async function snapshot(c: LocalCluster, client: GafferClient, timeoutMs = 3000): Promise<Snapshot> {
  const at = Date.now();
  const list = (await client.call<ListResult>(ClientSubject.list, {}, timeoutMs)).resources;
  const running: Snapshot['running'] = {};
  await Promise.all(
    [...c.workers.keys()].map(async (id) => {
      try {
        const st = await client.call<WorkerStatusResult>(subjects.workerStatus(id), {}, 1500);
        running[id] = st.tasks.map((t) => ({ name: t.name, id: t.id }));
      } catch {
        running[id] = null;
      }
    }),
  );
  // The list shows a sharded resource once, with its shards inside: each
  // shard runs as a task of its own (its name and id), so it is listed here
  // as one, and the resource's own record is marked to run nowhere.
  const flat: Listed[] = [];
  for (const r of list) {
    if (!r.shards) {
      flat.push({ name: r.name, id: r.id, worker: r.worker, state: r.state });
      continue;
    }
    flat.push({ name: r.name, id: r.id, worker: r.worker, state: r.state, sharded: true });
    for (const x of r.shards) flat.push({ name: shardName(r.name, x.index), id: shardId(r.id, x.index), worker: x.worker, state: x.state });
  }
  return { at, list: flat, running };
}
