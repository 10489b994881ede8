// WorkerLiveness is the leader's fast failure detector for workers. It probes
// each worker's status subject; when NATS says nobody is there, it revokes the
// worker's lease at once instead of waiting for its TTL. Because a worker that
// is alive but cut off from NATS may still run its tasks until its own fence
// window passes, its work may start elsewhere only after that window, counted
// from when the revoke returned (any keepalive the worker saw answered was
// sent before). The work is written elsewhere at once, with a start delay
// that ends with the window (core/fence-waits.ts), so the commits of a
// thousand moves overlap the window instead of following it. Before the
// revoke, a note under keys.fencing (on a lease that outlives the window)
// tells a leader that loads state meanwhile to wait the window out too.

import type { Prober } from '#platform/nats/prober.js';
import type { Clock } from '#platform/clock.js';
import type { Store } from '#platform/ports.js';
import type { Logger } from '#platform/log.js';
import { subjects } from '#protocol/subjects.js';
import { keys } from '#protocol/keys.js';
import { packed } from '#protocol/codec.js';
import type { Fencing } from '#protocol/stored.js';

/** Slack on top of a worker's fence window before its work starts elsewhere, after we revoked it. */
export const FENCE_SLACK_MS = 50;
/** Total worker probes per second the leader allows itself. */
const PROBES_PER_SECOND = 500;

const probeKey = (workerId: string): string => `worker:${workerId}`;

interface Revoked {
  epoch: string;
  /** clock.now() when the revoke returned; unset while it is in flight. */
  at?: number;
}

export class WorkerLiveness {
  private readonly revoked = new Map<string, Revoked>();
  private readonly fenceMs = new Map<string, number>();
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly prober: Prober,
    private readonly log: Logger,
    /** The worker's current incarnation (lease id), if it is live. */
    private readonly epochOf: (id: string) => string | undefined,
    private readonly clock: Clock,
  ) {}

  /**
   * track starts probing a worker incarnation (again). A revoke of that same
   * incarnation stays known: a reload while it is in flight must not forget
   * that the worker may still run its tasks.
   */
  track(id: string, fenceMs: number, epoch: string): void {
    if (this.revoked.get(id)?.epoch !== epoch) this.revoked.delete(id);
    if (this.stopped) return;
    this.fenceMs.set(id, fenceMs);
    const interval = Math.max(100, Math.ceil((this.fenceMs.size / PROBES_PER_SECOND) * 1000));
    this.prober.watch(probeKey(id), subjects.workerStatus(id), () => void this.revoke(id), interval);
  }

  /**
   * fencedBy is called when the worker's key is gone. When we revoked this
   * incarnation ourselves, it returns the clock time (clock.now()) by which
   * the worker has certainly stopped its tasks; undefined when its lease
   * expired, which takes longer than its fence window.
   */
  fencedBy(id: string, epoch: string): number | undefined {
    this.prober.unwatch(probeKey(id));
    const r = this.revoked.get(id);
    if (!r || r.epoch !== epoch) return undefined;
    // The watch can report the deletion before the revoke returns: the lease is gone by now either way.
    return (r.at ?? this.clock.now()) + (this.fenceMs.get(id) ?? 0) + FENCE_SLACK_MS;
  }

  /**
   * noted records that another leader revoked this incarnation, or was about
   * to (a fencing note names it, and it was still registered at our load).
   * When it was is unknown, so its fence window counts from when we see its
   * key gone: it was deleted before that, and nothing renewed it after.
   */
  noted(id: string, epoch: string): void {
    if (!this.revoked.has(id)) this.revoked.set(id, { epoch });
  }

  forget(id: string): void {
    this.prober.unwatch(probeKey(id));
    this.revoked.delete(id);
    this.fenceMs.delete(id);
  }

  stop(): void {
    this.stopped = true;
    for (const id of this.fenceMs.keys()) this.prober.unwatch(probeKey(id));
  }

  /** revoke ends a worker's lease now; the watch then reports its key gone (fencedBy). */
  async revoke(id: string, why = 'worker is gone from NATS'): Promise<void> {
    const epoch = this.epochOf(id);
    if (epoch === undefined || this.stopped) return;
    this.log.warn({ worker: id, lease: epoch }, `${why}; revoking its lease`);
    // Marked before the call: the watch may report the deletion before the call returns.
    const r: Revoked = { epoch };
    this.revoked.set(id, r);
    await this.leaveNote(id, epoch);
    try {
      await this.store.revokeLease(epoch);
    } catch (err) {
      this.log.info({ worker: id, err: (err as Error).message }, 'worker lease revoke failed (already gone?)');
    }
    r.at = this.clock.now();
  }

  /**
   * leaveNote writes the fencing note before the revoke, so no leader can see
   * the worker gone without it. Unfenced: a deposed leader's note only makes
   * a start wait. If it cannot be written, the revoke goes ahead anyway: a
   * failed worker must not keep its work, and only a takeover within the
   * window would miss the note.
   */
  private async leaveNote(id: string, epoch: string): Promise<void> {
    const fenceMs = this.fenceMs.get(id) ?? 0;
    try {
      // Granted before the revoke, and a second longer than the window: it outlives it.
      const lease = await this.store.grantLease(Math.ceil((fenceMs + FENCE_SLACK_MS) / 1000) + 1);
      const note: Fencing = { epoch, fenceMs };
      await this.store.txn(undefined, [{ put: keys.fencing(id), value: packed.encode(note), lease }]);
    } catch (err) {
      this.log.warn({ worker: id, err: (err as Error).message }, 'could not leave a fencing note; revoking anyway');
    }
  }
}
