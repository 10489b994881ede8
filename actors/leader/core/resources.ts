// The rules for what clients ask of resources: add (placed at once, or
// pending with a reason), remove (its checkpoint goes too), and restart (a
// completed or failed resource runs again, from its checkpoint).

import { ResourceState, type Resource, type Spec } from '#protocol/messages.js';
import { toResource } from '#protocol/stored.js';
import type { ClusterState } from './state.js';
import { TERMINAL, type Entry } from './records.js';
import type { Tick } from './batch.js';
import { endHandoff } from './handoffs.js';
import { place } from './placement.js';
import { startSchedule } from './schedules.js';

/** add creates the resource unless it exists; returns whether it did. */
export function add(s: ClusterState, name: string, spec: Spec, tick: Pick<Tick, 'newId' | 'wall'>): boolean {
  if (s.resources.has(name)) return false;
  s.touch(name);
  const e: Entry = {
    rec: { name, id: tick.newId(), worker: null, spec, createdAt: tick.wall, state: ResourceState.pending, attempt: 0, failures: 0 },
    revision: 0,
    assign: undefined,
  };
  s.resources.set(name, e);
  s.renamed(name, true);
  if (!startSchedule(s, e, Date.parse(tick.wall))) place(s, e);
  return true;
}

/** remove deletes the resource (its checkpoint too); returns what it was, or undefined if unknown. */
export function remove(s: ClusterState, name: string): Resource | undefined {
  const e = s.resources.get(name);
  if (!e) return undefined;
  s.touch(name);
  const view = toResource(e.rec, e.revision);
  s.log.moves.push({ name, id: e.rec.id, from: e.rec.worker, to: null, deleted: true, reason: 'lost' });
  if (e.rec.worker) s.free(e.rec.worker, name);
  endHandoff(s, e);
  s.pending.delete(name);
  s.resources.delete(name);
  s.fenceWaits.drop(name);
  s.log.checkpoints.delete(name);
  if (e.rec.checkpoint) s.log.dropCheckpoints.add(name);
  s.renamed(name, false);
  return view;
}

/** restart runs a completed or failed resource again, from its checkpoint; undefined if unknown, the state if it is not terminal. */
export function restart(s: ClusterState, name: string): Resource | ResourceState | undefined {
  const e = s.resources.get(name);
  if (!e) return undefined;
  // A scheduled resource runs again at its next fire, or now by schedule.trigger.
  if (!TERMINAL.has(e.rec.state) || e.rec.state === ResourceState.scheduled) return e.rec.state;
  const { result: _r, error: _e, failedOn: _f, ...rest } = e.rec;
  e.rec = { ...rest, failures: 0 };
  place(s, e);
  return toResource(e.rec, e.revision);
}
