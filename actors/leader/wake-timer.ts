// WakeTimer wakes the leader when the next schedule fire is due: the core
// says when (Plan.wakeAt, wall time), and this arms one timer on the
// injected clock for it. A timer that fires a little early only leads to a
// batch that fires nothing and asks again.

import type { Clock, Timer } from '#platform/clock.js';

/**
 * The longest one timer waits; a later fire is waited for in steps. Node
 * runs a timer of more than 2^31-1 ms (24.8 days: a monthly cron) at once.
 */
export const MAX_WAIT_MS = 3_600_000;

export class WakeTimer {
  private timer: Timer | undefined;
  private at: number | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly wake: () => void,
  ) {}

  /** set arms the timer for `at` (epoch ms), or disarms it when undefined. */
  set(at: number | undefined): void {
    if (at === this.at && this.timer) return;
    this.cancel();
    if (at === undefined) return;
    this.at = at;
    this.timer = this.clock.after(Math.min(MAX_WAIT_MS, Math.max(0, at - this.clock.wall())), () => {
      this.timer = undefined;
      this.at = undefined;
      this.wake();
    });
  }

  cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.at = undefined;
  }
}
