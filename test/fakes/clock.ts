// FakeClock: time moves only when a test says so. Timers run in order of
// their due time; between timers every pending promise callback runs, so
// code awaiting I/O on in-memory fakes makes progress as it would for real.

import type { Clock, Timer } from '#platform/clock.js';

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  every?: number;
  cancelled: boolean;
}

/** settle lets every queued promise callback (and those they queue) run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

export class FakeClock implements Clock {
  private t = 1000;
  private seq = 0;
  private timers: Pending[] = [];
  readonly wallOrigin = Date.UTC(2026, 0, 1);

  now(): number {
    return this.t;
  }

  wall(): number {
    return this.wallOrigin + this.t;
  }

  after(ms: number, fn: () => void): Timer {
    return this.add({ at: this.t + Math.max(0, ms), seq: ++this.seq, fn, cancelled: false });
  }

  every(ms: number, fn: () => void): Timer {
    const every = Math.max(1, ms);
    return this.add({ at: this.t + every, seq: ++this.seq, fn, every, cancelled: false });
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve));
  }

  private add(p: Pending): Timer {
    this.timers.push(p);
    return { cancel: () => void (p.cancelled = true) };
  }

  /** pendingTimers counts timers that have not fired or been canceled (repeating ones included). */
  get pendingTimers(): number {
    return this.timers.filter((p) => !p.cancelled).length;
  }

  /** jump moves time forward by ms and runs no timer: what a blocked or paused process finds when it runs again, before its timers do. */
  jump(ms: number): void {
    this.t += ms;
  }

  /** advance moves time forward by ms, running each timer due on the way at its own time. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      this.timers = this.timers.filter((p) => !p.cancelled);
      const next = this.timers.filter((p) => p.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.t = Math.max(this.t, next.at);
      if (next.every) next.at += next.every;
      else next.cancelled = true;
      next.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}
