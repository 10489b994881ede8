// HandoffDeadlines gives the old owner of each handoff a deadline to say it
// stopped the task. The core says which handoffs a batch started and ended
// (Plan.handoffs); timers are the shell's. When one fires, the leader checks
// that the same handoff is still in flight and revokes the old owner, whose
// fence window then lets the new owner start.

import type { Clock, Timer } from '#platform/clock.js';
import type { Assignment } from './core/records.js';
import type { HandoffChange } from './core/change-log.js';

/** How long a handoff's old owner gets to report its task stopped before it is fenced, unless a drain says otherwise. */
export const HANDOFF_DEADLINE_MS = 30_000;

export class HandoffDeadlines {
  /** By resource name. */
  private readonly timers = new Map<string, Timer>();

  constructor(
    private readonly clock: Clock,
    private readonly onTimeout: (name: string, from: Assignment) => void,
  ) {}

  /** apply sets a deadline for each handoff a batch started, and drops those it ended. */
  apply(handoffs: readonly HandoffChange[]): void {
    for (const h of handoffs) {
      this.timers.get(h.name)?.cancel();
      this.timers.delete(h.name);
      if (!h.started) continue;
      this.timers.set(h.name, this.clock.after(h.deadlineMs ?? HANDOFF_DEADLINE_MS, () => this.onTimeout(h.name, h.from)));
    }
  }

  cancelAll(): void {
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
  }
}
