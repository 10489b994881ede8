// spec.schedule: when a resource runs again, and what happens when a fire
// finds its previous run still going. Calendar specs are cron expressions
// read by croner (five or six fields, IANA time zones, DST handled: a time
// the spring change skips fires at the first valid time after it, a time the
// autumn change repeats fires once), not a parser of our own; interval specs
// ("every": "6h") fire at whole multiples of the interval since startAt (or
// the Unix epoch), so every leader computes the same fire times.

import { Cron } from 'croner';
import { BadRequestError } from './errors.js';
import type { Spec } from './messages.js';

/** What a fire does when the previous run has not ended. */
export const Overlap = {
  /** The fire is skipped (and said so): Kubernetes' Forbid, Nomad's prohibit_overlap. */
  skip: 'skip',
  /** The fire waits and runs when the previous run ends, back to back (Temporal's buffer all). */
  queue: 'queue',
  /** The running run is stopped, and the new one starts once it has (stop before start). */
  replace: 'replace',
  /**
   * The new run starts at once: the running attempt is told to stop but not
   * waited for, so the two may overlap while it stops. A resource runs one
   * attempt at a time, so runs never go on side by side for long.
   */
  allow: 'allow',
} as const;
export type Overlap = (typeof Overlap)[keyof typeof Overlap];
const OVERLAPS = new Set<string>(Object.values(Overlap));

export interface ScheduleSpec {
  /** A cron expression (five fields, or six with seconds first). */
  cron?: string;
  /** IANA time zone the cron expression is read in (default UTC). */
  timeZone?: string;
  /** An interval, e.g. "6h", "90s", "1h30m". */
  every?: string;
  /** The interval in milliseconds (from `every`). */
  everyMs?: number;
  /** Each fire starts up to this much after its time, the same delay on every leader. */
  jitterMs: number;
  overlap: Overlap;
  /** A fire missed by longer than this (the leader was down) is skipped and counted. */
  catchupWindowMs: number;
  /** Created paused. */
  paused: boolean;
  note?: string;
  /** No fire before this (epoch ms). */
  startAt?: number;
  /** No fire after this (epoch ms). */
  endAt?: number;
  /** At most this many runs started by the schedule (triggers and backfills do not count). */
  limit?: number;
  /** How many ended runs resource.get shows. */
  history: number;
}

export const DEFAULT_CATCHUP_WINDOW_MS = 60_000;
export const DEFAULT_HISTORY = 10;
export const MAX_HISTORY = 100;
const MIN_EVERY_MS = 1000;
const MAX_JITTER_MS = 3_600_000;
const MAX_CATCHUP_MS = 7 * 86_400_000;
const MAX_NOTE = 512;

const FIELDS = ['cron', 'timeZone', 'every', 'jitterMs', 'overlap', 'catchupWindowMs', 'paused', 'note', 'startAt', 'endAt', 'limit', 'history'];

/** InvalidScheduleError: spec.schedule (or a schedule request) is not one we can run. */
export class InvalidScheduleError extends BadRequestError {
  override name = 'InvalidScheduleError';
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_RE = /^(?:\d+(?:ms|s|m|h|d))+$/;

/** parseDuration reads "6h", "90s", "1h30m" into milliseconds; undefined if it is not one. */
export function parseDuration(s: string): number | undefined {
  if (!DURATION_RE.test(s)) return undefined;
  let ms = 0;
  for (const [, n, unit] of s.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(n) * UNITS[unit!]!;
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** parseTime reads an ISO 8601 time or epoch milliseconds. */
export function parseTime(v: unknown, what: string): number {
  const t = typeof v === 'number' ? v : typeof v === 'string' ? Date.parse(v) : NaN;
  if (!Number.isSafeInteger(t) || t < 0) throw new InvalidScheduleError(`"${what}" must be an ISO 8601 time or epoch milliseconds`);
  return t;
}

const wholeIn = (v: unknown, lo: number, hi: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;

/** validateSchedule checks spec.schedule and returns it with defaults filled in. */
export function validateSchedule(v: unknown): ScheduleSpec {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new InvalidScheduleError('"spec.schedule" must be an object');
  const r = v as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!FIELDS.includes(k)) throw new InvalidScheduleError(`unknown field "spec.schedule.${k}"; expected ${FIELDS.join(', ')}`);
  if ((r.cron === undefined) === (r.every === undefined)) throw new InvalidScheduleError('"spec.schedule" needs exactly one of "cron" and "every"');
  const out: ScheduleSpec = {
    jitterMs: 0,
    overlap: Overlap.skip,
    catchupWindowMs: DEFAULT_CATCHUP_WINDOW_MS,
    paused: false,
    history: DEFAULT_HISTORY,
  };
  if (r.cron !== undefined) {
    if (typeof r.cron !== 'string' || r.cron.length > 256) throw new InvalidScheduleError('"spec.schedule.cron" must be a cron expression');
    if (r.timeZone !== undefined && (typeof r.timeZone !== 'string' || r.timeZone.length > 64)) {
      throw new InvalidScheduleError('"spec.schedule.timeZone" must be an IANA time zone name, e.g. "Europe/Paris"');
    }
    out.cron = r.cron;
    if (r.timeZone !== undefined) out.timeZone = r.timeZone as string;
    try {
      // Reading the next fire also checks the time zone, which croner resolves lazily.
      cronOf(out).nextRun(new Date(0));
    } catch (err) {
      const what = /timezone/i.test((err as Error).message) ? `unknown time zone ${JSON.stringify(r.timeZone)}` : `invalid cron expression ${JSON.stringify(r.cron)}`;
      throw new InvalidScheduleError(`"spec.schedule": ${what}: ${(err as Error).message}`);
    }
  } else {
    if (r.timeZone !== undefined) throw new InvalidScheduleError('"spec.schedule.timeZone" applies to "cron" only');
    const ms = typeof r.every === 'string' ? parseDuration(r.every) : undefined;
    if (ms === undefined || ms < MIN_EVERY_MS) throw new InvalidScheduleError('"spec.schedule.every" must be a duration of at least 1s, e.g. "6h", "90s", "1h30m"');
    out.every = r.every as string;
    out.everyMs = ms;
  }
  if (r.jitterMs !== undefined) {
    if (!wholeIn(r.jitterMs, 0, MAX_JITTER_MS)) throw new InvalidScheduleError(`"spec.schedule.jitterMs" must be a whole number from 0 to ${MAX_JITTER_MS}`);
    out.jitterMs = r.jitterMs;
  }
  if (r.overlap !== undefined) {
    if (typeof r.overlap !== 'string' || !OVERLAPS.has(r.overlap)) throw new InvalidScheduleError(`"spec.schedule.overlap" must be one of ${[...OVERLAPS].join(', ')}`);
    out.overlap = r.overlap as Overlap;
  }
  if (r.catchupWindowMs !== undefined) {
    if (!wholeIn(r.catchupWindowMs, 0, MAX_CATCHUP_MS)) throw new InvalidScheduleError(`"spec.schedule.catchupWindowMs" must be a whole number from 0 to ${MAX_CATCHUP_MS}`);
    out.catchupWindowMs = r.catchupWindowMs;
  }
  if (r.paused !== undefined) {
    if (typeof r.paused !== 'boolean') throw new InvalidScheduleError('"spec.schedule.paused" must be true or false');
    out.paused = r.paused;
  }
  if (r.note !== undefined) out.note = validateNote(r.note, 'spec.schedule.note');
  if (r.startAt !== undefined) out.startAt = parseTime(r.startAt, 'spec.schedule.startAt');
  if (r.endAt !== undefined) out.endAt = parseTime(r.endAt, 'spec.schedule.endAt');
  if (out.startAt !== undefined && out.endAt !== undefined && out.endAt < out.startAt) throw new InvalidScheduleError('"spec.schedule.endAt" is before startAt');
  if (r.limit !== undefined) {
    if (!wholeIn(r.limit, 1, Number.MAX_SAFE_INTEGER)) throw new InvalidScheduleError('"spec.schedule.limit" must be a whole number of runs, at least 1');
    out.limit = r.limit;
  }
  if (r.history !== undefined) {
    if (!wholeIn(r.history, 0, MAX_HISTORY)) throw new InvalidScheduleError(`"spec.schedule.history" must be a whole number from 0 to ${MAX_HISTORY}`);
    out.history = r.history;
  }
  return out;
}

export function validateNote(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length > MAX_NOTE) throw new InvalidScheduleError(`"${what}" must be a string of at most ${MAX_NOTE} characters`);
  return v;
}

/** Parsed schedules by the (never mutated) spec.schedule value they came from. */
const parsed = new WeakMap<object, ScheduleSpec>();
const crons = new Map<string, Cron>();

/** scheduleOf reads a validated spec's schedule, defaults filled in; undefined when it has none. */
export function scheduleOf(spec: Spec): ScheduleSpec | undefined {
  const v = spec.schedule;
  if (v === undefined || v === null || typeof v !== 'object') return undefined;
  let s = parsed.get(v);
  if (!s) {
    s = validateSchedule(v);
    parsed.set(v, s);
  }
  return s;
}

function cronOf(s: Pick<ScheduleSpec, 'cron' | 'timeZone'>): Cron {
  const key = `${s.timeZone ?? 'UTC'} ${s.cron}`;
  let c = crons.get(key);
  if (!c) {
    // No callback: croner only computes times and sets no timer.
    c = new Cron(s.cron!, { timezone: s.timeZone ?? 'UTC' });
    if (crons.size > 1000) crons.clear();
    crons.set(key, c);
  }
  return c;
}

/** fireAfter is the schedule's first fire time strictly after `after` (epoch ms), within startAt and endAt; undefined when none is left. */
export function fireAfter(s: ScheduleSpec, after: number): number | undefined {
  const from = s.startAt !== undefined ? Math.max(after, s.startAt - 1) : after;
  let t: number | undefined;
  if (s.everyMs !== undefined) {
    const anchor = s.startAt ?? 0;
    t = anchor + (Math.floor((from - anchor) / s.everyMs) + 1) * s.everyMs;
  } else {
    t = cronOf(s).nextRun(new Date(from))?.getTime();
  }
  return t === undefined || (s.endAt !== undefined && t > s.endAt) ? undefined : t;
}

/** fireTimes lists up to n fire times strictly after `after`. */
export function fireTimes(s: ScheduleSpec, after: number, n: number): number[] {
  const out: number[] = [];
  for (let t = fireAfter(s, after); t !== undefined && out.length < n; t = fireAfter(s, t)) out.push(t);
  return out;
}

/**
 * jitterOf is how long after its time a fire starts: spread over [0,
 * jitterMs) by the name and the time, so every leader waits the same.
 */
export function jitterOf(name: string, fireTime: number, jitterMs: number): number {
  if (jitterMs <= 0) return 0;
  // FNV-1a over the name and the time.
  let h = 0x811c9dc5;
  for (const ch of `${name}@${fireTime}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h % jitterMs;
}
