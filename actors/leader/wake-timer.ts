// WakeTimer wakes the leader when the next schedule fire is due: the core
// says when (Plan.wakeAt, wall time), and this arms one timer on the
// injected clock for it. A timer that fires a little early only leads to a
// batch that fires nothing and asks again.

import type { Clock, Timer } from '#platform/clock.js';

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
    this.timer = this.clock.after(Math.max(0, at - this.clock.wall()), () => {
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
