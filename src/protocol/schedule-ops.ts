// The schedule operations clients send (schedule.pause, resume, trigger,
// backfill) and what resource.get shows of a schedule and its runs.

import type { Json } from './messages.js';
import { InvalidScheduleError, Overlap, parseTime, validateNote } from './schedule.js';
import { validateName } from './validate.js';

export type ScheduleAction = 'pause' | 'resume' | 'trigger' | 'backfill';

export interface ScheduleRequest {
  name: string;
  /** pause and resume: why, shown with the schedule. */
  note?: string;
  /** backfill: every fire time from `from` to `to` (epoch ms, both included). */
  from?: number;
  to?: number;
  /** backfill: the overlap policy for these runs (default: the schedule's). */
  overlap?: Overlap;
}

/** Most fire times one backfill may ask for. */
export const MAX_BACKFILL = 1000;

const FIELDS: Record<ScheduleAction, string[]> = {
  pause: ['name', 'note'],
  resume: ['name', 'note'],
  trigger: ['name'],
  backfill: ['name', 'from', 'to', 'overlap'],
};

/** validateScheduleRequest checks the body of schedule.<action>. */
export function validateScheduleRequest(action: ScheduleAction, body: unknown): ScheduleRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new InvalidScheduleError('request body must be a JSON object');
  const r = body as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!FIELDS[action].includes(k)) throw new InvalidScheduleError(`unknown field "${k}"; expected ${FIELDS[action].join(', ')}`);
  const out: ScheduleRequest = { name: validateName(r.name) };
  if (r.note !== undefined) out.note = validateNote(r.note, 'note');
  if (action === 'backfill') {
    if (r.from === undefined || r.to === undefined) throw new InvalidScheduleError('backfill needs "from" and "to"');
    out.from = parseTime(r.from, 'from');
    out.to = parseTime(r.to, 'to');
    if (out.to < out.from) throw new InvalidScheduleError('"to" is before "from"');
    if (r.overlap !== undefined) {
      if (typeof r.overlap !== 'string' || !(Object.values(Overlap) as string[]).includes(r.overlap)) {
        throw new InvalidScheduleError(`"overlap" must be one of ${Object.values(Overlap).join(', ')}`);
      }
      out.overlap = r.overlap as Overlap;
    }
  }
  return out;
}

/** Why a run started. */
export type RunCause = 'schedule' | 'trigger' | 'backfill';

/** How a run ended: as its task did, or stopped for a newer run (replace, allow) or a delete. */
export type RunState = 'running' | 'completed' | 'failed' | 'replaced';

/** RunView is one run as resource.get shows it. */
export interface RunView {
  run: number;
  /** The fire time it ran for (ISO 8601; a trigger's is when it was asked for). */
  fireTime: string;
  cause: RunCause;
  state: RunState;
  startedAt: string;
  endedAt?: string;
  result?: Json;
  error?: string;
}

/** ScheduleView is what resource.get shows of a schedule. */
export interface ScheduleView {
  /** The next fire times (ISO 8601), up to 3; empty when paused or none is left. */
  next: string[];
  paused: boolean;
  note?: string;
  pausedAt?: string;
  /** The run going on now. */
  running?: RunView;
  /** Fire times waiting for the running run to end (overlap "queue", backfill). */
  queued: string[];
  /** Runs started so far (the newest run's number). */
  runs: number;
  /** Fires skipped so far (overlap, catch-up window, paused). */
  skipped: number;
}

/** ScheduleResult answers a schedule request: the resource as it now is, and what a trigger or backfill did. */
export interface ScheduleResult {
  resource: import('./messages.js').Resource;
  /** trigger: whether the run started, waits in the queue, or was skipped. */
  fired?: 'started' | 'queued' | 'skipped';
  /** backfill: the fire times in the range, and what became of them. */
  fires?: number;
  started?: number;
  queued?: number;
  skipped?: number;
}
