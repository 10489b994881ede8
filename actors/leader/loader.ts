// loadCluster reads everything a new leader needs at one etcd revision:
// live workers, every resource, which assignment keys exist (keys only: each
// resource record names its own assignment's epoch), the commit chain and
// recent write outcomes. It builds the model and marks what needs repair;
// it does no writing. It yields to the event loop as it goes, so lease
// keepalives keep running while a large state loads.

import { setImmediate } from 'node:timers/promises';
import { keys, parseKey } from '../../src/protocol/keys.js';
import { decodeRecord, decodeWorkerInfo } from '../../src/protocol/stored.js';
import type { Store } from '../../src/platform/ports.js';
import type { Logger } from '../../src/platform/log.js';
import type { Clock } from '../../src/platform/clock.js';
import { ClusterState, type Cordon } from './model.js';
import { packed } from '../../src/protocol/codec.js';
import { Dedupe } from './dedupe.js';

export interface Loaded {
  state: ClusterState;
  dedupe: Dedupe;
  revision: number;
  /** The commit chain's current value (undefined: the key does not exist yet). */
  chainValue: Uint8Array | undefined;
  /** Each live worker's declared fence window. */
  fenceMs: Map<string, number>;
}

export async function loadCluster(store: Store, term: number, log: Logger, clock: Clock): Promise<Loaded> {
  const t0 = clock.now();
  const workers = await store.range(keys.workersPrefix);
  const revision = workers.revision;
  const dedupe = new Dedupe(store, term, clock);
  const [resources, assigns, chain, cordons] = await Promise.all([
    store.range(keys.resourcesPrefix, revision),
    store.range(keys.assignmentsPrefix, revision, { keysOnly: true }),
    store.range(keys.commitChain, revision),
    store.range(keys.cordonsPrefix, revision),
    dedupe.load(revision),
  ]);
  const tRead = clock.now();
  const state = new ClusterState(term);
  const fenceMs = new Map<string, number>();
  for (const kv of cordons.kvs) {
    const id = kv.key.slice(keys.cordonsPrefix.length);
    const c = packed.decode(kv.value) as Partial<Cordon> | null;
    state.loadCordon(id, { draining: c?.draining === true, ...(typeof c?.moved === 'number' ? { moved: c.moved } : {}) });
  }
  for (const kv of workers.kvs) {
    const id = parseKey.worker(kv.key);
    if (!id) continue;
    try {
      const info = decodeWorkerInfo(kv.value);
      state.loadWorker(id, info.capacity, kv.lease, info.kinds, info.labels);
      fenceMs.set(id, info.fenceMs);
    } catch (err) {
      log.warn({ key: kv.key, err: (err as Error).message }, 'skipping malformed worker');
    }
  }
  const present = new Set<string>();
  for (const kv of assigns.kvs) present.add(kv.key);
  let n = 0;
  for (const kv of resources.kvs) {
    if (++n % 10000 === 0) await setImmediate();
    const name = parseKey.resource(kv.key);
    if (!name) continue;
    let d;
    try {
      d = decodeRecord(kv.value);
    } catch (err) {
      log.error({ key: kv.key, err: (err as Error).message }, 'skipping malformed resource');
      continue;
    }
    const key = d.rec.worker ? keys.assignment(d.rec.worker, name) : undefined;
    // An assignment counts only if its key is there; repair rewrites whatever is missing or stale.
    const { rec, epoch, handoff } = d;
    const mine =
      key && present.delete(key) && epoch !== undefined
        ? { worker: rec.worker!, epoch, attempt: rec.attempt, ...(rec.delayMs ? { delayMs: rec.delayMs } : {}), ...(rec.checkpoint ? { checkpoint: true } : {}) }
        : undefined;
    state.loadResource(d.rec, kv.modRevision, mine, handoff);
  }
  const orphans: Array<{ worker: string; name: string }> = [];
  for (const key of present) {
    const k = parseKey.assignment(key);
    if (k) orphans.push({ worker: k.workerId, name: k.name });
  }
  state.repair(orphans);
  log.info(
    {
      revision,
      workers: state.workers.size,
      resources: state.resources.size,
      pending: state.pending.size,
      readMs: Math.round(tRead - t0),
      buildMs: Math.round(clock.now() - tRead),
    },
    'leader loaded state',
  );
  return { state, dedupe, revision, chainValue: chain.kvs.find((kv) => kv.key === keys.commitChain)?.value, fenceMs };
}
