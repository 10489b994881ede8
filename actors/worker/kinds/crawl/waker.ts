// What a crawl loop waits on when it has nothing to start: a page or a side
// task finishing, a nudge (a slot released, a setup done, an item arrived),
// the time a host's next request is allowed, or the crawl's stop, whichever
// comes first. Nothing stays attached once the wait is over (orAborted).

import { orAborted } from '#platform/abortable.js';
import type { Clock } from '#platform/clock.js';

export class Waker {
  /** Resolves the wait in progress; a no-op between waits. */
  private wakeUp: () => void = () => {};

  constructor(
    private readonly clock: Clock,
    private readonly stop: AbortSignal,
  ) {}

  /** nudge ends the wait in progress, if any. */
  nudge(): void {
    this.wakeUp();
  }

  /** wait resolves at the first of: one of `busy` settling, a nudge, the clock reaching `at`, or the stop. */
  async wait(at: number | undefined, busy: Iterable<Promise<unknown>>): Promise<void> {
    const woken = new Promise<void>((resolve) => (this.wakeUp = resolve));
    const timer = at === undefined ? undefined : this.clock.after(Math.max(0, at - this.clock.now()), () => this.wakeUp());
    try {
      // The stop wakes the loop even while emits are pending.
      await orAborted(Promise.race([...busy, woken]), this.stop, undefined);
    } finally {
      timer?.cancel();
      this.wakeUp = () => {};
    }
  }
}
