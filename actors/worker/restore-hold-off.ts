// RestoreHoldOff says how long a worker waits, once its lease keepalives are
// answered again, before it restarts the tasks its fence stopped. The first
// fence after a quiet spell restarts at once: a one-off etcd stall should
// cost as little as possible. A worker whose keepalives keep lapsing waits
// longer each time (0.5 s up to 15 s, half of each wait random), because each
// restart costs a read of its assignments and a report per task, load that
// lands on the same etcd and leader whose slowness made it fence. In a
// million-bench run, 250 workers of one starved pool fenced 16,422 times in
// three minutes, about once every 3 s each, restarting ~350 tasks each time.

import { Backoff } from '#platform/retry.js';

/** A fence this long after the previous one starts the count again. */
export const QUIET_MS = 60_000;
export const HOLD_OFF = { initialMs: 500, maxMs: 15_000 };

export class RestoreHoldOff {
  private readonly backoff: Backoff;
  private lastFenceAt = -Infinity;
  private fences = 0;

  constructor(random: () => number = Math.random) {
    this.backoff = new Backoff(HOLD_OFF, random);
  }

  /** fenced: the lease's keepalives lapsed at `now` (the clock's monotonic ms). */
  fenced(now: number): void {
    if (now - this.lastFenceAt > QUIET_MS) {
      this.fences = 0;
      this.backoff.reset();
    }
    this.fences++;
    this.lastFenceAt = now;
  }

  /** restoredWaitMs: how long to wait before restarting tasks, now that the lease is restored. */
  restoredWaitMs(): number {
    return this.fences <= 1 ? 0 : this.backoff.next();
  }
}
