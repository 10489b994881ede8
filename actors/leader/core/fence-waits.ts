// FenceWaits says when a resource's next attempt may start while a worker it
// was taken from may still run it: one we revoked, which is fencing itself
// (the shell's liveness.ts), or one a load found a fencing note for (loader.ts). The
// wait follows the resource wherever it goes until the window has passed.
// Times are the leader's clock (clock.now()); a batch planned later gets
// only what is left of a wait.

/** StartDelay is how long an attempt waits to start, and when that wait ends if a fence window sets it. */
export interface StartDelay {
  delayMs?: number;
  /** The leader's clock time the wait ends at (see Assignment.notBefore). */
  notBefore?: number;
}

export class FenceWaits {
  /** By resource name, the clock time when the worker it was taken from has certainly stopped. */
  private readonly waits = new Map<string, number>();
  /** When the last of them has passed. */
  private end = 0;
  /** Revoked workers a load found fencing notes for: by id, when they have certainly stopped. */
  private readonly noted = new Map<string, number>();
  /** The leader's clock as the batch is planned. */
  private at = 0;

  /** begin starts a batch planned at `now`, and forgets the waits once all have passed. */
  begin(now: number): void {
    this.at = now;
    if (this.waits.size > 0 && now >= this.end) this.waits.clear();
  }

  /** wait makes `name`'s next attempt wait until `until`, unless that has passed. */
  wait(name: string, until: number): void {
    if (until <= this.at) return;
    this.waits.set(name, until);
    this.end = Math.max(this.end, until);
  }

  /** note records, from a load, a revoked worker that may run its tasks until `until`. */
  note(worker: string, until: number): void {
    this.noted.set(worker, until);
  }

  /** waitForNoted makes `name` wait for `worker`'s fence window, if a load found a note for it. */
  waitForNoted(name: string, worker: string): void {
    const until = this.noted.get(worker);
    if (until !== undefined) this.wait(name, until);
  }

  drop(name: string): void {
    this.waits.delete(name);
  }

  /**
   * startAfter is the start delay of `name`'s next attempt: the larger of
   * `delayMs` (a restart's backoff) and what is left of its wait, with the
   * time it ends when the wait is what holds it (the assign event says what
   * is left as it leaves: assign-publisher.ts).
   */
  startAfter(name: string, delayMs = 0): StartDelay {
    const by = this.waits.get(name);
    const wait = by === undefined ? 0 : Math.ceil(by - this.at);
    const d = Math.max(delayMs, wait);
    if (d <= 0) return {};
    return wait > 0 ? { delayMs: d, notBefore: this.at + d } : { delayMs: d };
  }
}
