// Assignments is the worker's view of what it should run, and the rules that
// keep it exact although core NATS may lose, repeat or reorder nothing but
// can drop whole stretches while we are away:
//
// - The worker subscribes to worker.<id>.assign before it reads its snapshot
//   from etcd; an event is applied only if its revision is newer than both
//   the snapshot and the last change applied to that name (no gap, no
//   duplicate, no going back).
// - An assignment is for one worker incarnation (its lease, `epoch`); any
//   other incarnation's assignment is not ours to run.
//
// It does no I/O: the worker feeds it snapshots and events and carries out
// the actions it returns.

import type { AssignEvent, Resource } from '../../src/protocol/messages.js';

export type Action = { kind: 'start'; resource: Resource } | { kind: 'stop'; name: string; reason: string };

export interface Assigned {
  resource: Resource;
  epoch: string;
}

export class Assignments {
  /** Per-name revision of the last change applied; anything not newer is old news. */
  private readonly seen = new Map<string, number>();
  /** The snapshot's revision: events at or below it are already in it. */
  private floor = 0;

  /**
   * snapshot replaces the view with etcd's, read at `revision`, and returns
   * what to stop and start so that exactly our incarnation's assignments run.
   */
  snapshot(assigned: readonly Assigned[], revision: number, epoch: string, running: ReadonlyMap<string, string>, why: string): Action[] {
    this.seen.clear();
    this.floor = revision;
    const want = new Map<string, Resource>();
    for (const a of assigned) {
      this.seen.set(a.resource.name, a.resource.revision);
      if (a.epoch === epoch) want.set(a.resource.name, a.resource);
    }
    const actions: Action[] = [];
    for (const [name, id] of running) if (want.get(name)?.id !== id) actions.push({ kind: 'stop', name, reason: `resync (${why})` });
    for (const r of want.values()) if (running.get(r.name) !== r.id) actions.push({ kind: 'start', resource: r });
    return actions;
  }

  /**
   * apply takes one event off worker.<id>.assign. `running` maps each running
   * task's name to its resource id.
   */
  apply(ev: AssignEvent, epoch: string, running: ReadonlyMap<string, string>): Action[] {
    const r = ev.resource;
    if (ev.revision <= Math.max(this.floor, this.seen.get(r.name) ?? 0)) return [];
    this.seen.set(r.name, ev.revision);
    const cur = running.get(r.name);
    if (ev.type === 'delete') return cur === undefined ? [] : [{ kind: 'stop', name: r.name, reason: 'unassigned' }];
    const mine = ev.epoch === epoch;
    const actions: Action[] = [];
    if (cur !== undefined && (!mine || cur !== r.id)) actions.push({ kind: 'stop', name: r.name, reason: mine ? 'replaced' : 'not ours' });
    if (mine && cur !== r.id) actions.push({ kind: 'start', resource: r });
    return actions;
  }
}

/** isAssignEvent checks the shape of an event off the wire before it is trusted. */
export function isAssignEvent(v: unknown): v is AssignEvent {
  if (!v || typeof v !== 'object') return false;
  const e = v as Partial<AssignEvent>;
  const r = e.resource as Partial<Resource> | undefined;
  return (
    (e.type === 'put' || e.type === 'delete') &&
    typeof e.revision === 'number' &&
    typeof e.epoch === 'string' &&
    !!r &&
    typeof r.name === 'string' &&
    typeof r.id === 'string'
  );
}
