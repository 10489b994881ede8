// UnsureAssigns keeps the assignment changes of a commit whose outcome is
// unknown (it failed, but may have applied). After the reload, workers are
// told how each of those assignments stands in the state just loaded: a put
// at the revision its record was last written (the assignment has not
// changed since), or a delete as of the load.

import type { Bus } from '#platform/ports.js';
import type { ClusterState } from './core/state.js';
import { assignedTask } from './encode.js';
import { publishAssigns, removed, type AssignChange } from './assign-publisher.js';

export class UnsureAssigns {
  private changes: AssignChange[] = [];

  add(changes: Iterable<AssignChange>): void {
    this.changes.push(...changes);
  }

  /** tell publishes each once, from `state` as loaded at `loadRevision`; `now` is the leader's clock. */
  tell(bus: Bus, state: ClusterState, term: number, loadRevision: number, now: number): void {
    const seen = new Set<string>();
    for (const c of this.changes.splice(0)) {
      const key = `${c.worker}/${c.task.name}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const cur = assignedTask(state.entry(c.task.name), term);
      if (cur?.worker === c.worker) publishAssigns(bus, [cur], state.revisionOf(c.task.name)!, now);
      else publishAssigns(bus, [removed(c.worker, c.task.name, c.task.id, c.task.attempt, c.epoch)], loadRevision, now);
    }
  }
}
