// A handoff is a move in progress: the new owner's assignment is written with
// a hold, and it starts only once the old owner has stopped the task (it says
// so, or it is certainly stopped: gone, or fenced by then). The shell arms a
// deadline for each handoff a batch starts (the log's handoffs): an old owner
// that does not say it stopped in time is revoked, and its fence window then
// ends the handoff.

import type { MoveReason } from '#protocol/messages.js';
import type { ClusterState } from './state.js';
import type { Assignment, Entry } from './records.js';

export function beginHandoff(s: ClusterState, e: Entry, from: Assignment, reason: MoveReason, deadlineMs?: number): void {
  e.handoff = { from, reason, ...(deadlineMs !== undefined ? { deadlineMs } : {}) };
  const set = s.leaving.get(from.worker) ?? new Set<string>();
  set.add(e.rec.name);
  s.leaving.set(from.worker, set);
  s.log.handoffs.push({ name: e.rec.name, from, started: true, ...(deadlineMs !== undefined ? { deadlineMs } : {}) });
}

export function endHandoff(s: ClusterState, e: Entry): void {
  const h = e.handoff;
  if (!h) return;
  e.handoff = undefined;
  const set = s.leaving.get(h.from.worker);
  set?.delete(e.rec.name);
  if (set?.size === 0) s.leaving.delete(h.from.worker);
  s.log.handoffs.push({ name: e.rec.name, from: h.from, started: false });
}

/** release lets the new owner start: the old one has stopped (or certainly will have, being fenced, after its fence wait). */
export function release(s: ClusterState, name: string): void {
  const e = s.resources.get(name);
  if (!e?.handoff) return;
  endHandoff(s, e);
  if (e.assign?.hold) {
    s.touch(name);
    const { hold: _h, delayMs: _d, notBefore: _n, ...rest } = e.assign;
    e.assign = { ...rest, ...s.fenceWaits.startAfter(name, e.rec.delayMs) };
  }
}
