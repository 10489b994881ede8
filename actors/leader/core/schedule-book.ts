// ScheduleBook is what the schedule rules keep between and during batches:
// which resources have a schedule, the batch's wall time, the events the
// rules announce, when the next fire is due (the shell sets a timer for it),
// and each schedule's next due time, computed once per bookkeeping value.

import type { StoredSchedule } from '#protocol/stored-schedule.js';
import type { PlannedEvent } from './batch.js';

export class ScheduleBook {
  /** Names of resources with a schedule. */
  readonly names = new Set<string>();
  /** names holds every scheduled resource of the state (a loaded state is indexed on its first batch). */
  indexed = false;
  /** The batch's wall time (epoch ms). */
  wall = 0;
  /** The earliest fire still ahead (epoch ms, jitter included), after the batch. */
  wakeAt: number | undefined;
  private events: PlannedEvent[] = [];
  private readonly due = new WeakMap<StoredSchedule, number | undefined>();

  begin(wall: number): void {
    this.wall = wall;
  }

  event(e: PlannedEvent): void {
    this.events.push(e);
  }

  /** skipped announces `count` fires from fireTime (to `until`) that started no run, and why. */
  skipped(name: string, fireTime: number, why: string, count: number, until?: number): void {
    this.events.push({
      kind: 'schedule.skipped',
      payload: { name, fireTime: new Date(fireTime).toISOString(), why, count, ...(until !== undefined && count > 1 ? { until: new Date(until).toISOString() } : {}) },
    });
  }

  takeEvents(): PlannedEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }

  /** cached is the due time of a schedule's bookkeeping value, computed once for each value. */
  cached(st: StoredSchedule, compute: () => number | undefined): number | undefined {
    if (this.due.has(st)) return this.due.get(st);
    const v = compute();
    this.due.set(st, v);
    return v;
  }
}
