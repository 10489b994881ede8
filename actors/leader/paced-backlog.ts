// PacedBacklog is the leader's side of the move pacing (move-pacer.ts): it
// gives the pacer each transaction's commit time and each batch its
// allowance, and when the pacing cut a batch's work that can wait short, it
// plans the next batch once the pacing may allow more, rather than at once:
// a mailbox that plans empty batch after empty batch only takes the CPU
// etcd is short of.

import type { Clock, Timer } from '#platform/clock.js';
import type { Logger } from '#platform/log.js';
import { MovePacer, PACING, type PacingOptions } from './move-pacer.js';

/** When the pacing held work back, the next batch for it comes this much later (unless one comes sooner). */
export const PACED_WAKE_MS = 100;

export class PacedBacklog {
  private readonly pacer: MovePacer;
  private wake: Timer | undefined;

  /** @param again plans another batch (the leader's reconcile). */
  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly again: () => void,
    opts: PacingOptions = PACING,
  ) {
    this.pacer = new MovePacer(clock.now(), opts);
  }

  /** committed: one transaction took `seconds`. */
  committed(seconds: number): void {
    const before = this.pacer.currentRate;
    this.pacer.observe(seconds * 1000, this.clock.now());
    if (this.pacer.currentRate < before) {
      this.log.info({ commitMs: Math.round(seconds * 1000), movesPerSecond: Math.round(this.pacer.currentRate) }, 'etcd commits slowly; pacing moves');
    }
  }

  /** allowance: how many resources the next batch's work that can wait may touch. */
  allowance(): number {
    return this.pacer.allowance(this.clock.now());
  }

  /**
   * planned: a batch given `allowance` touched `touched` resources with work
   * that can wait, and left some for later (`backlog`): the next batch comes
   * at once if its budget cut it, or after PACED_WAKE_MS if the pacing did.
   */
  planned(backlog: boolean, touched: number, allowance: number): void {
    this.pacer.spend(touched);
    if (!backlog) return;
    if (touched < allowance) return this.again();
    if (this.wake) return;
    this.wake = this.clock.after(PACED_WAKE_MS, () => {
      this.wake = undefined;
      this.again();
    });
  }

  cancel(): void {
    this.wake?.cancel();
    this.wake = undefined;
  }
}
