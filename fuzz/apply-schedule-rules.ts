// The judge's rules for resource.apply and schedule.*: what an accepted
// answer must say, and what it teaches the shadow (name -> id, absent, or
// unknown), so a lost or doubled write on them is caught like one on add.
//
// resource.apply: one result per item, in order and by name; each a typed
// error or an outcome (created, unchanged, updated) with the resource's id;
// created only for a name not seen to exist, never for one seen to exist,
// whose id stays; `pruned` names that are gone after. A dry run says so,
// and changes nothing the fuzzer knows.
//
// schedule.pause|resume|trigger|backfill: NOT_FOUND only for a name not seen
// to exist, CONFLICT (no schedule, already paused, a trigger the overlap
// policy would skip) only for one not seen deleted; otherwise the resource
// with its id, its schedule paused or not as asked, a trigger's `fired` and
// a backfill's counts that add up. A backfill's range is valid only against
// the schedule it names, so a range with no (or too many) fire times may be
// refused with BAD_REQUEST even for a well-formed body.

import { ErrorCode, isErrorCode } from '#protocol/errors.js';
import { ClientSubject } from '#protocol/subjects.js';

export type Known = { k: 'present'; id: string } | { k: 'absent' } | { k: 'unknown' };

/** What a rule reads of the judge: the shadow as it was before this request, and how to teach it and complain. */
export interface RuleScope {
  /** The shadow's view of a name before this request (unknown when contended in a burst). */
  before(name: string): Known;
  /** Whether answers about `name` may be judged against the shadow. */
  checkable(name: string): boolean;
  learn(name: string, k: Known): void;
  bad(detail: string, kind?: 'wrong-answer' | 'untyped'): void;
}

export const SCHEDULE_SUBJECTS: ReadonlySet<string> = new Set([
  ClientSubject.schedulePause,
  ClientSubject.scheduleResume,
  ClientSubject.scheduleTrigger,
  ClientSubject.scheduleBackfill,
]);

const OUTCOMES = new Set(['created', 'unchanged', 'updated']);

/** itemNames are the names an apply body lists (strings only), in order. */
export function itemNames(body: unknown): string[] {
  const items = (body as { resources?: unknown } | null)?.resources;
  if (!Array.isArray(items)) return [];
  return items.flatMap((x: { name?: unknown } | null) => (typeof x?.name === 'string' ? [x.name] : []));
}

/** A BAD_REQUEST a well-formed request may still get, by its subject and message. */
export function refusedByState(subject: string, code: string | undefined, message: unknown): boolean {
  return subject === ClientSubject.scheduleBackfill && code === ErrorCode.BAD_REQUEST && typeof message === 'string' && /fire time/.test(message);
}

export function judgeApply(req: Record<string, unknown>, r: Record<string, unknown>, code: string | undefined, valid: boolean, s: RuleScope): void {
  if (code !== undefined) {
    if (valid) s.bad(`a valid apply failed with ${code}`);
    return;
  }
  const results = r.results;
  const pruned = r.pruned;
  if (!Array.isArray(results)) return s.bad('an apply answered without results');
  if (!Array.isArray(pruned) || !pruned.every((n) => typeof n === 'string')) return s.bad('an apply answered without pruned names');
  const dry = req.dryRun === true;
  if ((r.dryRun === true) !== dry) s.bad(`an apply with dryRun ${String(req.dryRun)} answered dryRun ${String(r.dryRun)}`);
  const items = Array.isArray(req.resources) ? (req.resources as Array<{ name?: unknown }>) : undefined;
  if (items && results.length !== items.length) return s.bad(`an apply of ${items.length} items got ${results.length} results`);
  results.forEach((x: { name?: unknown; id?: unknown; outcome?: unknown; error?: { code?: unknown; message?: unknown } } | null, i) => {
    const want = items?.[i]?.name;
    if (!x || typeof x.name !== 'string') return s.bad(`apply result ${i} has no name`);
    if (typeof want === 'string' && x.name !== want) return s.bad(`apply result ${i} is for ${x.name}, the item is ${want}`);
    if (x.error !== undefined) {
      if (!isErrorCode(x.error?.code) || typeof x.error.message !== 'string') return s.bad(`apply result ${i} has an untyped error: ${JSON.stringify(x.error).slice(0, 200)}`, 'untyped');
      if (x.error.code === ErrorCode.INTERNAL) return s.bad(`apply item ${x.name}: INTERNAL: ${x.error.message}`, 'untyped');
      if (valid) s.bad(`valid apply item ${x.name} was refused: ${x.error.code}: ${x.error.message}`);
      return;
    }
    if (typeof x.outcome !== 'string' || !OUTCOMES.has(x.outcome)) return s.bad(`apply result ${i} (${x.name}) has outcome ${String(x.outcome)}`);
    // A dry run names no id for what it would create.
    const idOk = typeof x.id === 'string' && (x.id !== '' || (dry && x.outcome === 'created'));
    if (!idOk) return s.bad(`apply result ${i} (${x.name}, ${x.outcome}) has id ${JSON.stringify(x.id)}`);
    const id = x.id as string;
    if (s.checkable(x.name) && valid) {
      const before = s.before(x.name);
      if (before.k === 'present' && (x.outcome === 'created' || id !== before.id)) s.bad(`apply of existing ${x.name} (id ${before.id}) answered ${x.outcome}, id ${id}`);
      if (before.k === 'absent' && x.outcome !== 'created') s.bad(`apply of absent ${x.name} answered ${x.outcome} (id ${id})`);
    }
    if (!dry) s.learn(x.name, s.checkable(x.name) ? { k: 'present', id } : { k: 'unknown' });
  });
  if (!dry) for (const n of pruned as string[]) s.learn(n, s.checkable(n) ? { k: 'absent' } : { k: 'unknown' });
}

export function judgeSchedule(subject: string, name: string, r: Record<string, unknown>, code: string | undefined, valid: boolean, s: RuleScope): void {
  const check = valid && s.checkable(name);
  const before = check ? s.before(name) : ({ k: 'unknown' } as Known);
  if (code === ErrorCode.NOT_FOUND) {
    if (before.k === 'present') s.bad(`${subject} of ${name} said NOT_FOUND, but it exists (id ${before.id})`);
    if (s.checkable(name)) s.learn(name, { k: 'absent' });
    return;
  }
  if (code === ErrorCode.CONFLICT) {
    if (before.k === 'absent') s.bad(`${subject} of absent ${name} said CONFLICT, not NOT_FOUND`);
    return;
  }
  if (code === ErrorCode.BAD_REQUEST && subject === ClientSubject.scheduleBackfill) return;
  if (code !== undefined) {
    if (valid) s.bad(`${subject} of ${name} failed with ${code}`);
    return;
  }
  const res = r.resource as { name?: unknown; id?: unknown; schedule?: { paused?: unknown } } | undefined;
  if (!res || res.name !== name || typeof res.id !== 'string') return s.bad(`${subject} of ${name} answered with resource ${JSON.stringify(res)?.slice(0, 200)}`);
  if (before.k === 'absent') s.bad(`${subject} of ${name} succeeded, but it was deleted`);
  if (before.k === 'present' && res.id !== before.id) s.bad(`${subject} of ${name} answered id ${res.id}, but it is ${before.id}`);
  if (subject === ClientSubject.schedulePause && res.schedule?.paused !== true) s.bad(`schedule.pause of ${name} answered a schedule not paused`);
  if (subject === ClientSubject.scheduleResume && res.schedule?.paused !== false) s.bad(`schedule.resume of ${name} answered a schedule still paused`);
  if (subject === ClientSubject.scheduleTrigger && !['started', 'queued', 'skipped'].includes(r.fired as string)) s.bad(`schedule.trigger of ${name} answered fired: ${String(r.fired)}`);
  if (subject === ClientSubject.scheduleBackfill) {
    const [fires, started, queued, skipped] = [r.fires, r.started, r.queued, r.skipped].map((v) => (typeof v === 'number' ? v : NaN));
    if (!(fires! > 0) || started! + queued! + skipped! !== fires) s.bad(`schedule.backfill of ${name} answered fires ${String(r.fires)}, started ${String(r.started)}, queued ${String(r.queued)}, skipped ${String(r.skipped)}`);
  }
  if (s.checkable(name)) s.learn(name, { k: 'present', id: res.id });
}
