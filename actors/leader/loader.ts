// A new leader's state comes from what etcd holds at one revision: live
// workers, every resource, which assignment keys exist (keys only: each
// resource record names its own assignment's epoch), the commit chain,
// cordons and recent write outcomes. readCluster reads it from etcd;
// a warm standby (standby.ts) keeps the same read current from a watch, so a
// takeover need not read it at all. Either way the resources arrive decoded
// and indexed (resource-index.ts), and buildCluster takes them over into the
// core's state (core/repair.ts loads it and marks what needs repair);
// neither writes. Reading yields to the event loop as it goes, so lease
// keepalives keep running while a large state loads.

import { setImmediate } from 'node:timers/promises';
import { keys, parseKey } from '#protocol/keys.js';
import { decodeCordon, decodeFencing, decodeWorkerInfo } from '#protocol/stored.js';
import { decodeOutcomes } from '#protocol/outcomes.js';
import type { KV, Store } from '#platform/ports.js';
import { LeaderLog, type Logger } from '#platform/log.js';
import type { Clock } from '#platform/clock.js';
import { ClusterState } from './core/state.js';
import { adoptResources, loadCordon, loadFencing, loadWorker, repair } from './core/repair.js';
import { ResourceIndex } from './resource-index.js';
import { FENCE_SLACK_MS } from './liveness.js';

/** ClusterRead is everything a leader's state is built from, at one revision. */
export interface ClusterRead {
  revision: number;
  workers: Iterable<KV>;
  /** Resources and assignment keys, decoded and indexed. The build takes it over: it is not to be used after. */
  resources: ResourceIndex;
  chain: Uint8Array | undefined;
  cordons: Iterable<KV>;
  /** Fencing notes of revoked workers (keys.fencing). */
  fencing: Iterable<KV>;
  dedupe: Iterable<KV>;
  /** Where it came from, for the log. */
  source: 'etcd' | 'standby';
}

export interface Loaded {
  state: ClusterState;
  revision: number;
  /** The commit chain's current value (undefined: the key does not exist yet). */
  chainValue: Uint8Array | undefined;
  /** Each live worker's declared fence window. */
  fenceMs: Map<string, number>;
  /** Live worker incarnations a fencing note names: a leader revoked them, or was about to. */
  noted: Map<string, string>;
}

/**
 * Records decoded between yields to the event loop: at a few hundred ms per
 * 10,000 on a loaded 2-core machine, bigger chunks would hold lease
 * keepalives back past a 2 s TTL while a large state loads.
 */
const YIELD_EVERY = 2_000;
/** A page of a whole-cluster read that was late is asked again this often (a read of 420k records took 33 s in the million bench). */
const PAGE_RETRIES = 4;

/** readCluster reads a ClusterRead from etcd, at the revision of its first read. */
export async function readCluster(store: Store): Promise<ClusterRead> {
  const workers = await store.range(keys.workersPrefix, undefined, { pageRetries: PAGE_RETRIES });
  const revision = workers.revision;
  const [resources, assigns, chain, cordons, fencing, dedupe] = await Promise.all([
    store.range(keys.resourcesPrefix, revision, { pageRetries: PAGE_RETRIES }),
    store.range(keys.assignmentsPrefix, revision, { keysOnly: true, pageRetries: PAGE_RETRIES }),
    store.range(keys.commitChain, revision),
    store.range(keys.cordonsPrefix, revision),
    store.range(keys.fencingPrefix, revision),
    store.range(keys.dedupePrefix, revision),
  ]);
  const index = new ResourceIndex();
  let n = 0;
  for (const kv of resources.kvs) {
    index.putResource(kv);
    if (++n % YIELD_EVERY === 0) await setImmediate();
  }
  for (const kv of assigns.kvs) index.putAssignment(kv.key);
  return {
    revision,
    workers: workers.kvs,
    resources: index,
    chain: chain.kvs.find((kv) => kv.key === keys.commitChain)?.value,
    cordons: cordons.kvs,
    fencing: fencing.kvs,
    dedupe: dedupe.kvs,
    source: 'etcd',
  };
}

/** buildCluster builds the state a leader serves from, with the write outcomes earlier leaders recorded. */
export async function buildCluster(read: ClusterRead, log: Logger, clock: Clock): Promise<Loaded> {
  const t0 = clock.now();
  const { revision } = read;
  const index = read.resources;
  const state = new ClusterState(index.entries);
  state.outcomes.load(
    [...read.dedupe].map((kv) => ({ revision: kv.modRevision, entries: decodeOutcomes(kv.value) })),
    clock.now(),
  );
  const fenceMs = new Map<string, number>();
  for (const kv of read.cordons) loadCordon(state, kv.key.slice(keys.cordonsPrefix.length), decodeCordon(kv.value));
  for (const kv of read.workers) {
    const id = parseKey.worker(kv.key);
    if (!id) continue;
    try {
      const info = decodeWorkerInfo(kv.value);
      loadWorker(state, id, info.capacity, kv.lease, info.kinds, info.labels);
      fenceMs.set(id, info.fenceMs);
    } catch (err) {
      log.warn({ key: kv.key, err: (err as Error).message }, 'skipping malformed worker');
    }
  }
  // A revoked worker that may still run its tasks: whatever of its work moves
  // waits out its whole window, counted from now (we cannot know when the
  // revoke was), unless it is back as a new incarnation, which it is only
  // once it has fenced.
  const noted = new Map<string, string>();
  for (const kv of read.fencing) {
    const id = parseKey.fencing(kv.key);
    if (!id) continue;
    try {
      const note = decodeFencing(kv.value);
      const live = state.workers.get(id);
      // Still registered: its revoke is in flight, or never came. The leader's liveness waits it out if its key goes.
      if (live?.epoch === note.epoch) noted.set(id, note.epoch);
      else if (!live) loadFencing(state, id, clock.now() + note.fenceMs + FENCE_SLACK_MS);
    } catch (err) {
      log.warn({ key: kv.key, err: (err as Error).message }, 'skipping malformed fencing note');
    }
  }
  for (const [key, err] of index.malformed) log.error({ key, err: err.message }, 'skipping malformed resource');
  adoptResources(state, index.byWorker, index.assigned);
  const orphans: Array<{ worker: string; name: string }> = [];
  for (const [worker, names] of index.assigned) for (const name of names) orphans.push({ worker, name });
  // In key order, as a read of etcd has them, whatever order a standby's watch delivered them in.
  orphans.sort((a, b) => (a.worker === b.worker ? (a.name < b.name ? -1 : 1) : a.worker < b.worker ? -1 : 1));
  repair(state, orphans);
  log.info(
    { revision, source: read.source, workers: state.workers.size, resources: state.resources.size, pending: state.pending.size, buildMs: Math.round(clock.now() - t0) },
    LeaderLog.built,
  );
  return { state, revision, chainValue: read.chain, fenceMs, noted };
}

/** loadCluster reads from etcd and builds. */
export async function loadCluster(store: Store, log: Logger, clock: Clock): Promise<Loaded> {
  const t0 = clock.now();
  const read = await readCluster(store);
  log.info({ revision: read.revision, readMs: Math.round(clock.now() - t0) }, LeaderLog.read);
  return buildCluster(read, log, clock);
}
