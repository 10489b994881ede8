// MovePacer paces the leader's work that can wait (moving a lost worker's
// resources, new attempts, repairs after a load) by how fast etcd commits.
// A mass failure hands the leader tens of thousands of moves at once, and
// it wrote them as fast as etcd took them: etcd then fell behind the rest of
// the fleet's lease keepalives, more workers lost their leases, and the
// moves grew. In the million bench that cascade ended every run that lost a
// pool of 250 simulated workers past 350k resources.
//
// A token bucket whose rate is adjusted AIMD-style: a transaction slower than
// slowMs halves the rate (at most once per cutEveryMs, down to minRate); each
// second without one adds increasePerSecond back, up to maxRate, which is
// high enough that a healthy etcd never sees the pacing (the batch budget
// binds first). Client requests are never paced: only what they leave behind.

/** The pacing's settings. */
export interface PacingOptions {
  /** A transaction that took at least this long means etcd is behind. */
  slowMs: number;
  /** Moves per second: the ceiling (and the start), and the floor. */
  maxRate: number;
  minRate: number;
  /** How much of the rate comes back per second without a slow transaction. */
  increasePerSecond: number;
  /** Slow transactions closer together than this halve the rate once. */
  cutEveryMs: number;
}

export const PACING: PacingOptions = { slowMs: 500, maxRate: 20_000, minRate: 200, increasePerSecond: 500, cutEveryMs: 1000 };

export class MovePacer {
  private rate: number;
  private tokens: number;
  private at: number;
  private lastCut = -Infinity;

  constructor(
    now: number,
    private readonly o: PacingOptions = PACING,
  ) {
    this.rate = o.maxRate;
    this.tokens = o.maxRate;
    this.at = now;
  }

  /** observe: one transaction committed after `ms`, at `now`. */
  observe(ms: number, now: number): void {
    if (ms < this.o.slowMs || now - this.lastCut < this.o.cutEveryMs) return;
    this.refill(now);
    this.rate = Math.max(this.o.minRate, this.rate / 2);
    this.tokens = Math.min(this.tokens, this.rate);
    this.lastCut = now;
  }

  /** allowance: how many resources the next batch's work that can wait may touch, at `now`. */
  allowance(now: number): number {
    this.refill(now);
    return Math.floor(this.tokens);
  }

  /** spend: a batch's work that can wait touched `n` resources. */
  spend(n: number): void {
    this.tokens = Math.max(0, this.tokens - n);
  }

  /** Moves per second allowed now. */
  get currentRate(): number {
    return this.rate;
  }

  private refill(now: number): void {
    const seconds = Math.max(0, now - this.at) / 1000;
    this.at = Math.max(this.at, now);
    // Recovery counts only time since the last cut.
    const calm = Math.min(seconds, Math.max(0, now - this.lastCut - this.o.cutEveryMs) / 1000);
    this.rate = Math.min(this.o.maxRate, this.rate + calm * this.o.increasePerSecond);
    this.tokens = Math.min(this.rate, this.tokens + seconds * this.rate);
  }
}
