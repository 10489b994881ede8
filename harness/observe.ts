// Observe: what the cluster says about itself, and waiting for recovery.
// Recovered means: every process we started is up, every etcd member (and
// every node of a NATS cluster) is healthy, the cluster answers cluster.status with all masters in the
// election and all workers live, and the state has converged: every listed
// resource runs on exactly its assigned worker with its id, and nothing else
// runs (names with client requests in flight or just ended are not judged).

import type { LocalCluster } from '#devcluster/cluster.js';
import type { GafferClient } from '#client/client.js';
import type { StatusResult } from '#protocol/messages.js';
import { keys, parseKey } from '#protocol/keys.js';
import type { Store } from '#platform/ports.js';
import { convergence, snapshot, type Finding } from './snapshot.js';
import { sleep } from '#platform/clock.js';
import { etcdHealthy, natsHealthy } from '#devcluster/probe.js';
import { ClientSubject } from '#protocol/subjects.js';

/**
 * Incarnations: for each master or worker id, the etcd revision just before
 * its latest restart. Its new incarnation's keys are newer than that; a key
 * of the dead one (alive until its lease runs out) is not.
 */
export type Incarnations = Map<string, number>;

/** registered says why etcd does not yet hold exactly one live key per master and worker incarnation. */
async function registered(c: LocalCluster, store: Store, since: Incarnations): Promise<string | undefined> {
  const election = await store.range(keys.electionPrefix);
  for (const id of c.masters.keys()) {
    const mine = election.kvs.filter((kv) => Buffer.from(kv.value).toString() === id);
    if (mine.length !== 1) return `${id} holds ${mine.length} election keys`;
    if (mine[0]!.createRevision <= (since.get(id) ?? 0)) return `${id}'s election key is its previous incarnation's`;
  }
  const workers = await store.range(keys.workersPrefix);
  for (const id of c.workers.keys()) {
    const kv = workers.kvs.find((k) => parseKey.worker(k.key) === id);
    if (!kv) return `${id} is not registered`;
    if (kv.modRevision <= (since.get(id) ?? 0)) return `${id}'s registration is its previous incarnation's`;
  }
  return undefined;
}

/** unhealthy says why the cluster is not whole yet, or undefined when it is. */
export async function unhealthy(c: LocalCluster, client: GafferClient, store: Store, since: Incarnations): Promise<string | undefined> {
  for (const [id, ch] of [...c.masters, ...c.workers]) if (!ch.running) return `${id} is not running`;
  for (const n of c.natsCluster?.nodes ?? []) {
    if (!n.child.running) return `nats-server ${n.name} is not running`;
    // In a cluster, /healthz is ok once the node's JetStream is in touch with a meta leader (so routed again) and its streams caught up.
    if (n.monitorUrl && !(await natsHealthy(n.monitorUrl))) return `nats-server ${n.name} is not healthy`;
  }
  for (const m of c.etcd?.members ?? []) {
    if (!m.child.running) return `${m.name} is not running`;
    if (!(await etcdHealthy(m.clientUrl))) return `${m.name} is not healthy`;
  }
  try {
    const why = await registered(c, store, since);
    if (why) return why;
  } catch (err) {
    return `etcd: ${(err as Error).message}`;
  }
  let st: StatusResult;
  try {
    st = await client.call<StatusResult>(ClientSubject.status, {}, 2000);
  } catch (err) {
    return `cluster.status: ${(err as Error).message}`;
  }
  const masters = [...c.masters.keys()].sort().join(',');
  if ([...st.masters].sort().join(',') !== masters) return `election holds [${st.masters.join(',')}], want [${masters}]`;
  const workers = [...c.workers.keys()].sort().join(',');
  const live = st.workers.map((w) => w.id).sort().join(',');
  if (live !== workers) return `leader ${st.leader} sees workers [${live}], want [${workers}]`;
  if (st.pending > 0) return `${st.pending} resources pending`;
  return undefined;
}

export interface Recovery {
  ok: boolean;
  /** When it was first seen whole and converged (Date.now()). */
  at: number;
  /** Why not, at the deadline. */
  why?: string;
  mismatches?: Finding[];
}

/**
 * waitRecovered polls until the cluster is whole and converged, or the
 * deadline passes. `dirty(since)` names what not to judge (see Workload.dirty);
 * pass () => new Set() to judge everything.
 */
export async function waitRecovered(
  o: { c: LocalCluster; client: GafferClient; store: Store; since: Incarnations },
  dirty: (since: number) => Set<string>,
  settleMs: number,
  timeoutMs: number,
): Promise<Recovery> {
  const { c, client, store, since } = o;
  const deadline = Date.now() + timeoutMs;
  let why = 'not checked';
  let last: Finding[] | undefined;
  while (Date.now() < deadline) {
    const bad = await unhealthy(c, client, store, since);
    if (bad) why = bad;
    else {
      try {
        const s = await snapshot(c, client);
        const v = convergence(s, dirty(s.at - settleMs));
        if (v.ok) return { ok: true, at: Date.now() };
        why = v.why;
        if (v.mismatches) last = v.mismatches;
      } catch (err) {
        why = `snapshot: ${(err as Error).message}`;
      }
    }
    await sleep(200);
  }
  return { ok: false, at: Date.now(), why, ...(last ? { mismatches: last } : {}) };
}
