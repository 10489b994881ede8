// WorkerLiveness is the leader's fast failure detector for workers. It probes
// each worker's status subject; when NATS says nobody is there, it revokes the
// worker's lease at once instead of waiting for its TTL. Because a worker that
// is alive but cut off from NATS may still run its tasks until its own fence
// window passes, the work moves only after that window, counted from when the
// revoke returned (any keepalive the worker saw answered was sent before).

import type { Prober } from '../../src/platform/nats/prober.js';
import type { Clock } from '../../src/platform/clock.js';
import type { Store } from '../../src/platform/ports.js';
import type { Logger } from '../../src/platform/log.js';
import { subjects } from '../../src/protocol/subjects.js';

/** Slack on top of a worker's fence window before moving work off a worker we revoked. */
const FENCE_SLACK_MS = 50;
/** Total worker probes per second the leader allows itself. */
const PROBES_PER_SECOND = 500;

const probeKey = (workerId: string): string => `worker:${workerId}`;

interface Revoked {
  epoch: string;
  /** performance.now() when the revoke returned; unset while it is in flight. */
  at?: number;
  /** The watch reported the worker's key gone. */
  deleted: boolean;
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
    /** The revoked worker has certainly fenced itself: move its work. */
    private readonly onFenced: (id: string, epoch: string) => void,
    private readonly clock: Clock,
  ) {}

  /** track starts probing a worker (again). */
  track(id: string, fenceMs: number): void {
    this.revoked.delete(id);
    if (this.stopped) return;
    this.fenceMs.set(id, fenceMs);
    const interval = Math.max(100, Math.ceil((this.fenceMs.size / PROBES_PER_SECOND) * 1000));
    this.prober.watch(probeKey(id), subjects.workerStatus(id), () => void this.revoke(id), interval);
  }

  /**
   * deleted is called when the worker's key is gone. It returns true when we
   * revoked this incarnation ourselves: the caller must place nothing there,
   * and will get onFenced once its work may move.
   */
  deleted(id: string, epoch: string): boolean {
    this.prober.unwatch(probeKey(id));
    const r = this.revoked.get(id);
    if (!r || r.epoch !== epoch) return false;
    r.deleted = true;
    this.schedule(id);
    return true;
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

  /** revoke ends a worker's lease now; its work moves once its fence window has passed (onFenced). */
  async revoke(id: string, why = 'worker is gone from NATS'): Promise<void> {
    const epoch = this.epochOf(id);
    if (epoch === undefined || this.stopped) return;
    this.log.warn({ worker: id, lease: epoch }, `${why}; revoking its lease`);
    // Marked before the call: the watch may report the deletion before the call returns.
    const r: Revoked = { epoch, deleted: false };
    this.revoked.set(id, r);
    try {
      await this.store.revokeLease(epoch);
    } catch (err) {
      this.log.info({ worker: id, err: (err as Error).message }, 'worker lease revoke failed (already gone?)');
    }
    r.at = this.clock.now();
    this.schedule(id);
  }

  private schedule(id: string): void {
    const r = this.revoked.get(id);
    if (!r || !r.deleted || r.at === undefined) return;
    const wait = Math.max(0, r.at + (this.fenceMs.get(id) ?? 0) + FENCE_SLACK_MS - this.clock.now());
    this.clock.after(wait, () => this.onFenced(id, r.epoch));
  }
}
