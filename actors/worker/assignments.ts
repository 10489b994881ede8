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
// - An assignment is one attempt. An attempt this worker already has, running
//   or ended on its own (completed or failed, and reported), is never started
//   again; a newer attempt of the same resource replaces it.
//
// It does no I/O: the worker feeds it snapshots and events and carries out
// the actions it returns.

import type { AssignedTask, AssignEvent } from '#protocol/messages.js';

export type Action = { kind: 'start'; task: AssignedTask } | { kind: 'stop'; name: string; reason: string };

export interface Assigned {
  resource: AssignedTask;
  epoch: string;
}

/** Known is the attempt this worker knows it has for a name: running, waiting to start, or ended on its own. */
export interface Known {
  id: string;
  attempt: number;
}

/** KnownLookup is what a worker has, by name: a Map will do, and the task set gives a live view. */
export interface KnownLookup {
  get(name: string): Known | undefined;
  [Symbol.iterator](): Iterator<[string, Known]>;
}

const same = (h: Known | undefined, t: { id: string; attempt: number }): boolean => !!h && h.id === t.id && h.attempt === t.attempt;

export class Assignments {
  /** Per-name revision of the last change applied; anything not newer is old news. */
  private readonly seen = new Map<string, number>();
  /** The snapshot's revision: events at or below it are already in it. */
  private floor = 0;
  /** The assignment last applied per name (from a snapshot or an event), while its key exists. */
  private readonly known = new Map<string, Assigned>();

  /**
   * snapshot replaces the view with etcd's, read at `revision`, and returns
   * what to stop and start so that exactly our incarnation's assignments run.
   */
  snapshot(assigned: readonly Assigned[], revision: number, epoch: string, known: KnownLookup, why: string): Action[] {
    this.seen.clear();
    this.known.clear();
    this.floor = revision;
    const want = new Map<string, AssignedTask>();
    for (const a of assigned) {
      this.seen.set(a.resource.name, a.resource.revision);
      this.known.set(a.resource.name, a);
      if (a.epoch === epoch) want.set(a.resource.name, a.resource);
    }
    const actions: Action[] = [];
    for (const [name, h] of known) {
      const w = want.get(name);
      if (!w || !same(h, w)) actions.push({ kind: 'stop', name, reason: `resync (${why})` });
    }
    // A handed-off attempt waits for the leader's release (a put without hold).
    for (const t of want.values()) if (!t.hold && !same(known.get(t.name), t)) actions.push({ kind: 'start', task: t });
    return actions;
  }

  /**
   * unchanged returns the assignments last applied if etcd's assignment keys
   * (read keys-only, at one revision) are exactly those, each at the revision
   * it was applied at: a resync then needs no values. A thousand-task worker
   * re-reading its values on every leader change made a fleet read its whole
   * state from etcd at once; at 100k, etcd answered DEADLINE_EXCEEDED and
   * every lease lapsed. Undefined if anything differs: read the values.
   */
  unchanged(keys: ReadonlyArray<{ name: string; modRevision: number }>): Assigned[] | undefined {
    if (keys.length !== this.known.size) return undefined;
    for (const k of keys) if (!this.known.has(k.name) || this.seen.get(k.name) !== k.modRevision) return undefined;
    return [...this.known.values()];
  }

  /** apply takes one event off worker.<id>.assign; `known` is what this worker has, by name. */
  apply(ev: AssignEvent, epoch: string, known: KnownLookup): Action[] {
    const t = ev.resource;
    if (ev.revision <= Math.max(this.floor, this.seen.get(t.name) ?? 0)) return [];
    this.seen.set(t.name, ev.revision);
    if (ev.type === 'delete') this.known.delete(t.name);
    else this.known.set(t.name, { resource: t, epoch: ev.epoch });
    const cur = known.get(t.name);
    if (ev.type === 'delete') return cur === undefined ? [] : [{ kind: 'stop', name: t.name, reason: 'unassigned' }];
    const mine = ev.epoch === epoch;
    if (mine && same(cur, t)) return [];
    const actions: Action[] = [];
    if (cur !== undefined) actions.push({ kind: 'stop', name: t.name, reason: !mine ? 'not ours' : cur.id !== t.id ? 'replaced' : 'newer attempt' });
    if (mine && !t.hold) actions.push({ kind: 'start', task: t });
    return actions;
  }
}
