// A new leader's state comes from what etcd holds at one revision: live
// workers, every resource, which assignment keys exist (keys only: each
// resource record names its own assignment's epoch), the commit chain,
// cordons and recent write outcomes. readCluster reads it from etcd;
// a warm standby (standby.ts) keeps the same read current from a watch, so a
// takeover need not read it at all. buildCluster decodes either into the
// core's state (core/repair.ts loads it and marks what needs repair);
// neither writes. Both yield to the event loop
// as they go, so lease keepalives keep running while a large state loads.

import { setImmediate } from 'node:timers/promises';
import { keys, parseKey } from '#protocol/keys.js';
import { decodeCordon, decodeFencing, decodeRecord, decodeWorkerInfo } from '#protocol/stored.js';
import { decodeOutcomes } from '#protocol/outcomes.js';
import type { KV, Store } from '#platform/ports.js';
import { LeaderLog, type Logger } from '#platform/log.js';
import type { Clock } from '#platform/clock.js';
import { ClusterState } from './core/state.js';
import { loadCordon, loadFencing, loadResource, loadWorker, repair } from './core/repair.js';
import { FENCE_SLACK_MS } from './liveness.js';

/** A resource as read: its record decoded once, by whoever read it (a malformed one as its error). */
export interface ResourceRow {
  key: string;
  modRevision: number;
  record: ReturnType<typeof decodeRecord> | Error;
}

/** ClusterRead is everything a leader's state is built from, at one revision. */
export interface ClusterRead {
  revision: number;
  workers: Iterable<KV>;
  resources: Iterable<ResourceRow>;
  /** Assignment keys that exist. The build takes it over: it deletes each key it matches (copying half a million keys costs half a second). */
  assignments: Set<string>;
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
 * Records decoded or built between yields to the event loop: at a few
 * hundred ms per 10,000 on a loaded 2-core machine, bigger chunks would hold
 * lease keepalives back past a 2 s TTL while a large state loads.
 */
const YIELD_EVERY = 2_000;
/** A page of a whole-cluster read that was late is asked again this often (a read of 420k records took 33 s in the million bench). */
const PAGE_RETRIES = 4;

export function resourceRow(kv: KV): ResourceRow {
  let record: ResourceRow['record'];
  try {
    record = decodeRecord(kv.value);
  } catch (err) {
    record = err instanceof Error ? err : new Error(String(err));
  }
  return { key: kv.key, modRevision: kv.modRevision, record };
}

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
  const rows: ResourceRow[] = [];
  for (const kv of resources.kvs) {
    if (rows.push(resourceRow(kv)) % YIELD_EVERY === 0) await setImmediate();
  }
  return {
    revision,
    workers: workers.kvs,
    resources: rows,
    assignments: new Set(assigns.kvs.map((kv) => kv.key)),
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
  const state = new ClusterState();
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
  const present = read.assignments;
  let n = 0;
  for (const row of read.resources) {
    if (++n % YIELD_EVERY === 0) await setImmediate();
    const name = parseKey.resource(row.key);
    if (!name) continue;
    if (row.record instanceof Error) {
      log.error({ key: row.key, err: row.record.message }, 'skipping malformed resource');
      continue;
    }
    const { rec, epoch, handoff } = row.record;
    const key = rec.worker ? keys.assignment(rec.worker, name) : undefined;
    // An assignment counts only if its key is there; repair rewrites whatever is missing or stale.
    const mine =
      key && present.delete(key) && epoch !== undefined
        ? { worker: rec.worker!, epoch, attempt: rec.attempt, ...(rec.delayMs ? { delayMs: rec.delayMs } : {}), ...(rec.checkpoint ? { checkpoint: true } : {}) }
        : undefined;
    loadResource(state, rec, row.modRevision, mine, handoff);
  }
  const orphans: Array<{ worker: string; name: string }> = [];
  for (const key of present) {
    const k = parseKey.assignment(key);
    if (k) orphans.push({ worker: k.workerId, name: k.name });
  }
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
