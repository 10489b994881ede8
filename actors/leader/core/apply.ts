// resource.apply: many resources made to match a declared set in one batch.
// Each item is created if new, left alone if its spec is the same, and
// updated if its spec differs; prune deletes what the selector matches and
// the apply does not name. A dry run answers the same without changing the
// state. What an update does to a running resource:
//
// - Only spec.labels changed: the record takes them; the task keeps running
//   (labels select resources, the task never sees them).
// - Running, starting or restarting: its next attempt runs the new spec,
//   stop-before-start like a handoff: the new assignment is written held,
//   and released once the old attempt says it stopped (or is fenced). It
//   stays on its worker if the worker still fits the new spec (kind,
//   constraints; a cordon does not move it), else it goes to the best fit, or
//   waits pending if none fits. Failures start again from zero: a fixed spec
//   gets its full restart budget. A checkpoint is kept and read by the new
//   attempt, as on any move.
// - Pending: placement is tried again with the new rules.
// - In a handoff already: the record takes the spec, and the held attempt is
//   released with it (the assignment is rewritten from the record).
// - Completed or failed: the record takes the spec and stays as it is;
//   resource.restart runs it again, with the new spec.
// - spec.rebalance only changes what later rebalance rounds may move.

import { ApplyOutcome, isRefused, MAX_PRUNE, type ApplyItemResult, type ApplyRequest, type PruneSelector } from '#protocol/apply.js';
import { labelsOf, matchesLabels } from '#protocol/labels.js';
import type { Json, Spec } from '#protocol/messages.js';
import type { ClientRequest } from '#protocol/request.js';
import type { Outcome } from '#protocol/outcomes.js';
import type { ClusterState } from './state.js';
import { TERMINAL, type Entry } from './records.js';
import { exclusion, place, wantOf } from './placement.js';
import { add, remove } from './resources.js';
import type { PlannedReply, Tick } from './batch.js';

/** planApply applies (or, dry, compares) every item in order, then prunes; the outcome is recorded for re-sent copies. */
export function planApply(
  s: ClusterState,
  req: ClientRequest,
  c: ApplyRequest,
  tick: Pick<Tick, 'newId' | 'wall'>,
): { reply: PlannedReply; outcome?: Outcome } {
  const named = new Set(c.resources.map((i) => i.name));
  const results = c.resources.map((item): ApplyItemResult => {
    if (isRefused(item)) return item;
    const e = s.resources.get(item.name);
    const outcome = compare(e, item.spec);
    if (!c.dryRun) {
      if (outcome === ApplyOutcome.created) add(s, item.name, item.spec, tick);
      else if (outcome === ApplyOutcome.updated) update(s, e!, item.spec);
    }
    return { name: item.name, id: s.resources.get(item.name)?.rec.id ?? '', outcome };
  });
  const { names, more } = c.prune ? pruneSet(s, c.prune, named) : { names: [], more: false };
  if (c.dryRun) {
    const answer = { ok: true as const, dryRun: true, results, pruned: names, ...(more ? { prunedMore: true } : {}) };
    return { reply: { req, build: () => answer } };
  }
  for (const name of names) remove(s, name);
  const outcome: Outcome = { op: 'apply', results, pruned: names, ...(more ? { prunedMore: true as const } : {}) };
  const answer = { ok: true as const, results, pruned: names, ...(more ? { prunedMore: true } : {}) };
  return { reply: { req, build: () => answer }, outcome };
}

/** compare says what applying `spec` does to a resource as it is (undefined: none yet). */
export function compare(e: Readonly<Entry> | undefined, spec: Spec): ApplyOutcome {
  if (!e) return ApplyOutcome.created;
  return sameJson(e.rec.spec, spec) ? ApplyOutcome.unchanged : ApplyOutcome.updated;
}

/** update gives a resource its new spec, with the consequences described at the top of this file. */
export function update(s: ClusterState, e: Entry, spec: Spec): void {
  const name = e.rec.name;
  s.touch(name);
  const labelsOnly = sameJson(withoutLabels(e.rec.spec), withoutLabels(spec));
  if (labelsOnly || e.handoff || TERMINAL.has(e.rec.state)) {
    e.rec = { ...e.rec, spec };
    return;
  }
  const { failedOn: _f, error: _e, ...rest } = e.rec;
  e.rec = { ...rest, spec, failures: 0 };
  const w = e.rec.worker === null ? undefined : s.workers.get(e.rec.worker);
  if (!w || !e.assign) return place(s, e);
  // Room aside (it is already there) and its cordon aside (a cordon keeps what a worker has).
  const fits = exclusion({ id: w.id, capacity: w.capacity, assigned: w.assigned, kinds: w.kinds, labels: w.labels, cordoned: false }, wantOf(spec), { ignoreRoom: true }) === undefined;
  place(s, e, { ...(fits ? { to: w } : {}), handoff: true, reason: 'update' });
}

/**
 * pruneSet is what a prune deletes: resources the selector matches and the
 * apply does not name, in name order, at most MAX_PRUNE of them. It scans
 * the names rather than the sorted list, which every add or remove drops:
 * sorting a million names costs far more than one pass over them.
 */
export function pruneSet(s: ClusterState, p: PruneSelector, named: ReadonlySet<string>): { names: string[]; more: boolean } {
  const match: string[] = [];
  for (const [name, e] of s.resources) {
    if (named.has(name)) continue;
    if ('prefix' in p ? name.startsWith(p.prefix) : matchesLabels(e.rec.spec, p.selector)) match.push(name);
  }
  match.sort();
  return { names: match.slice(0, MAX_PRUNE), more: match.length > MAX_PRUNE };
}

function withoutLabels(spec: Spec): Spec {
  if (Object.keys(labelsOf(spec)).length === 0 && spec.labels === undefined) return spec;
  const { labels: _l, ...rest } = spec;
  return rest;
}

/** sameJson compares JSON values, object keys in any order. */
export function sameJson(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => sameJson(x, b[i]));
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && sameJson(a[k], b[k]));
}
