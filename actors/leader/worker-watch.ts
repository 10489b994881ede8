// workerInputs turns changes under the workers prefix into batch inputs, and
// drives liveness with them: a new key is a worker up (and probed from now
// on), a deleted one a worker down, fenced by when we revoked it ourselves.

import { parseKey } from '#protocol/keys.js';
import { decodeWorkerInfo } from '#protocol/stored.js';
import type { WatchEvent } from '#platform/ports.js';
import type { Logger } from '#platform/log.js';
import type { Input } from './core/batch.js';
import type { WorkerLiveness } from './liveness.js';

export interface WorkerWatchContext {
  /** Events at or before it are in the loaded state already. */
  loadRevision: number;
  /** A live worker's current incarnation, as the state has it. */
  epochOf: (id: string) => string | undefined;
  liveness: WorkerLiveness;
  log: Logger;
}

export function workerInputs(events: readonly WatchEvent[], c: WorkerWatchContext): Input[] {
  const out: Input[] = [];
  for (const ev of events) {
    if (ev.kv.modRevision <= c.loadRevision) continue;
    const id = parseKey.worker(ev.kv.key);
    if (!id) continue;
    if (ev.type === 'delete') {
      const epoch = c.epochOf(id);
      // If we revoked it ourselves, it may still run its tasks until its fence window passes.
      const fencedBy = epoch === undefined ? undefined : c.liveness.fencedBy(id, epoch);
      c.liveness.forget(id);
      out.push({ kind: 'worker-down', id, ...(fencedBy !== undefined ? { fencedBy } : {}) });
      continue;
    }
    try {
      const info = decodeWorkerInfo(ev.kv.value);
      c.liveness.track(id, info.fenceMs, ev.kv.lease);
      out.push({ kind: 'worker-up', id, capacity: info.capacity, epoch: ev.kv.lease, kinds: info.kinds, labels: info.labels });
    } catch (err) {
      c.log.warn({ key: ev.kv.key, err: (err as Error).message }, 'ignoring malformed worker');
    }
  }
  return out;
}
