// Clock is the port through which behaviour reads time and sets timers, so
// that unit tests can drive it with a fake one. `now` is monotonic (it never
// jumps with the wall clock); `wall` is for timestamps people read.

import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';

export { sleep };

/** Timer is a scheduled callback; cancel is idempotent. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Monotonic milliseconds, for deadlines and durations. */
  now(): number;
  /** Wall-clock milliseconds since the epoch, for timestamps. */
  wall(): number;
  /** after runs fn once, ms from now. Timers never keep the process alive. */
  after(ms: number, fn: () => void): Timer;
  /** every runs fn every ms until canceled. */
  every(ms: number, fn: () => void): Timer;
  /** sleep resolves ms from now. */
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wall: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  every(ms, fn) {
    const t = setInterval(fn, Math.max(1, ms));
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
  sleep: (ms) => sleep(Math.max(0, ms), undefined, { ref: false }),
};
