// Standby keeps a master that does not lead ready to: it holds the read a new
// leader's state is built from (loader.ts), kept current by one watch on all
// of gaffer's keys, each resource record decoded and indexed as it arrives
// (resource-index.ts). A takeover then costs a barrier write and the build,
// not a read of every resource, which at a hundred thousand resources takes
// seconds in which nobody serves.
//
// take() is the handover. The new leader writes a barrier key, fenced on its
// own election key. A watch delivers events in revision order, a revision's
// events together, so once the barrier's event has arrived every earlier
// write has been applied, the old leader's last ones included (they are
// fenced on its election key, deleted before we won). The standby then stops
// and hands its maps over: the leader owns them from there. When anything is
// off (the first read not done in time, the watch reset, the barrier
// refused) take() says so with undefined, and the leader reads etcd instead.

import { keys } from '#protocol/keys.js';
import { packed } from '#protocol/codec.js';
import type { Guard, KV, Store, WatchEvent } from '#platform/ports.js';
import type { Clock, Timer } from '#platform/clock.js';
import { LeaderLog, type Logger } from '#platform/log.js';
import { withRetry } from '#platform/retry.js';
import { readCluster, type ClusterRead } from './loader.js';
import { ResourceIndex } from './resource-index.js';

/** How long take() waits for the standby's first read, then for its watch to pass the barrier. */
export const TAKE_READ_MS = 30_000;
export const TAKE_BARRIER_MS = 5_000;

type Phase = 'reading' | 'watching' | 'stopped';

export class Standby {
  private workers = new Map<string, KV>();
  private resources = new ResourceIndex();
  private cordons = new Map<string, KV>();
  private fencing = new Map<string, KV>();
  private dedupe = new Map<string, KV>();
  private chain: Uint8Array | undefined;
  /** Every write up to this revision is applied. */
  private applied = 0;
  private phase: Phase = 'reading';
  private ready: Promise<void> = Promise.resolve();
  private watch: { close(): Promise<void> } | undefined;
  private readonly waiters = new Set<{ revision: number; resolve: () => void }>();
  private readonly stopped = new AbortController();
  private readonly log: Logger;

  constructor(
    private readonly store: Store,
    log: Logger,
    private readonly clock: Clock,
  ) {
    this.log = log.child({ component: 'standby' });
  }

  start(): this {
    this.ready = this.fill();
    return this;
  }

  /**
   * take hands the standby's read to the leader of `guard`, once it is
   * certainly current, and stops the standby; undefined if it cannot be
   * made so within its deadlines. It stops the standby either way.
   */
  async take(guard: Guard): Promise<ClusterRead | undefined> {
    try {
      if (!(await this.within(this.ready.then(() => true), TAKE_READ_MS)) || this.phase !== 'watching') return undefined;
      const barrier = await this.store.txn(guard, [{ put: keys.takeover, value: packed.encode({ term: guard.createRevision }) }]);
      const caughtUp = new Promise<boolean>((resolve) => {
        if (this.applied >= barrier) return resolve(true);
        this.waiters.add({ revision: barrier, resolve: () => resolve(true) });
      });
      if (!(await this.within(caughtUp, TAKE_BARRIER_MS)) || this.phase !== 'watching') return undefined;
      const read: ClusterRead = {
        revision: this.applied,
        workers: this.workers.values(),
        resources: this.resources,
        chain: this.chain,
        cordons: this.cordons.values(),
        fencing: this.fencing.values(),
        dedupe: this.dedupe.values(),
        source: 'standby',
      };
      this.log.info({ revision: this.applied, barrier, resources: this.resources.entries.size }, 'standby handed over');
      return read;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'standby could not hand over; the leader reads etcd');
      return undefined;
    } finally {
      this.stop();
    }
  }

  /** stop ends the watch; the maps stay as they are (a take() may have handed them over). */
  stop(): void {
    if (this.phase === 'stopped') return;
    this.phase = 'stopped';
    this.stopped.abort();
    void this.watch?.close();
    this.watch = undefined;
    for (const w of this.waiters) w.resolve();
    this.waiters.clear();
  }

  /** within resolves p's value, or false after ms (or once stopped). */
  private within(p: Promise<boolean>, ms: number): Promise<boolean> {
    let timer: Timer | undefined;
    const late = new Promise<boolean>((resolve) => (timer = this.clock.after(ms, () => resolve(false))));
    return Promise.race([p, late]).finally(() => timer?.cancel());
  }

  /** fill reads everything, then watches from the revision after; again after a watch reset. */
  private async fill(): Promise<void> {
    this.phase = 'reading';
    let read: ClusterRead;
    try {
      read = await withRetry(() => readCluster(this.store), {
        initialMs: 200,
        maxMs: 5000,
        signal: this.stopped.signal,
        onRetry: (err, attempt) => attempt === 1 && this.log.warn({ err: (err as Error)?.message }, 'standby cannot read state yet; retrying'),
      });
    } catch {
      return; // stopped
    }
    if (this.stopped.signal.aborted) return;
    const byKey = <T extends { key: string }>(xs: Iterable<T>): Map<string, T> => new Map([...xs].map((x) => [x.key, x]));
    this.workers = byKey(read.workers);
    this.resources = read.resources;
    this.cordons = byKey(read.cordons);
    this.fencing = byKey(read.fencing);
    this.dedupe = byKey(read.dedupe);
    this.chain = read.chain;
    this.applied = read.revision;
    this.phase = 'watching';
    this.watch = this.store.watch(keys.root, read.revision + 1, (events) => this.apply(events), (err) => this.reset(err), { prev: false });
    this.log.info({ revision: read.revision, resources: this.resources.entries.size }, LeaderLog.standbyReady);
  }

  private reset(err: Error): void {
    if (this.phase === 'stopped') return;
    this.log.warn({ err: err.message }, 'standby watch reset; reading again');
    this.watch = undefined;
    this.ready = this.fill();
    // A take() waiting for the barrier gives up now (the phase says why) rather than at its deadline.
    for (const w of this.waiters) w.resolve();
    this.waiters.clear();
  }

  private apply(events: WatchEvent[]): void {
    if (this.phase !== 'watching') return;
    for (const ev of events) {
      const { key } = ev.kv;
      const put = ev.type === 'put';
      if (key.startsWith(keys.resourcesPrefix)) {
        if (put) this.resources.putResource(ev.kv);
        else this.resources.deleteResource(key);
      } else if (key.startsWith(keys.assignmentsPrefix)) {
        if (put) this.resources.putAssignment(key);
        else this.resources.deleteAssignment(key);
      } else if (key.startsWith(keys.dedupePrefix)) {
        if (put) this.dedupe.set(key, ev.kv);
        else this.dedupe.delete(key);
      } else if (key.startsWith(keys.workersPrefix)) {
        if (put) this.workers.set(key, ev.kv);
        else this.workers.delete(key);
      } else if (key.startsWith(keys.cordonsPrefix)) {
        if (put) this.cordons.set(key, ev.kv);
        else this.cordons.delete(key);
      } else if (key.startsWith(keys.fencingPrefix)) {
        if (put) this.fencing.set(key, ev.kv);
        else this.fencing.delete(key);
      } else if (key === keys.commitChain) {
        this.chain = put ? ev.kv.value : undefined;
      }
      // Checkpoints, the election and the barrier itself: not part of the read.
      if (ev.kv.modRevision > this.applied) this.applied = ev.kv.modRevision;
    }
    for (const w of this.waiters) {
      if (w.revision > this.applied) continue;
      this.waiters.delete(w);
      w.resolve();
    }
  }
}
