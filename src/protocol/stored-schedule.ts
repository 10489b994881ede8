// A schedule's bookkeeping, kept in its resource's record (the `sched`
// field) so that a fire commits in the same transaction as the run it
// starts: a new leader reads `through` and neither fires a time again nor
// misses one.

import type { Json } from './messages.js';
import type { RunCause, RunState } from './schedule-ops.js';

export interface StoredRun {
  run: number;
  fireTime: number;
  cause: RunCause;
  state: RunState;
  startedAt: string;
  endedAt?: string;
  result?: Json;
  error?: string;
}

export interface QueuedFire {
  fireTime: number;
  cause: RunCause;
}

export interface StoredSchedule {
  /** Every fire time up to this one (epoch ms) is handled: started, queued or skipped. */
  through: number;
  /** Runs started so far; the newest run's number. */
  runs: number;
  /** Runs the schedule itself started (spec.schedule.limit counts these). */
  fired: number;
  /** The run going on now. */
  current?: StoredRun;
  /** Fires waiting for the current run to end, oldest first. */
  queued: QueuedFire[];
  paused?: { note?: string; at: string };
  skipped: number;
  /** Ended runs, newest first, at most spec.schedule.history. */
  history: StoredRun[];
}

const CAUSES = new Set(['schedule', 'trigger', 'backfill']);
const STATES = new Set(['running', 'completed', 'failed', 'replaced']);
const n = (v: unknown): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0);

function runOf(v: unknown): StoredRun | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const r = v as Partial<StoredRun>;
  if (typeof r.run !== 'number' || typeof r.fireTime !== 'number' || typeof r.startedAt !== 'string') return undefined;
  return {
    run: r.run,
    fireTime: r.fireTime,
    cause: typeof r.cause === 'string' && CAUSES.has(r.cause) ? r.cause : 'schedule',
    state: typeof r.state === 'string' && STATES.has(r.state) ? r.state : 'completed',
    startedAt: r.startedAt,
    ...(typeof r.endedAt === 'string' ? { endedAt: r.endedAt } : {}),
    ...(r.result !== undefined ? { result: r.result } : {}),
    ...(typeof r.error === 'string' ? { error: r.error } : {}),
  };
}

/** decodeSchedule reads a record's `sched` field back, dropping what is not shaped like what we write. */
export function decodeSchedule(v: unknown): StoredSchedule | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const s = v as Record<string, unknown>;
  const current = runOf(s.current);
  const p = s.paused as { note?: unknown; at?: unknown } | undefined;
  return {
    through: n(s.through),
    runs: n(s.runs),
    fired: n(s.fired),
    ...(current ? { current } : {}),
    queued: Array.isArray(s.queued)
      ? s.queued.flatMap((q: { fireTime?: unknown; cause?: unknown }) =>
          q && typeof q.fireTime === 'number' ? [{ fireTime: q.fireTime, cause: typeof q.cause === 'string' && CAUSES.has(q.cause) ? (q.cause as RunCause) : 'schedule' }] : [],
        )
      : [],
    ...(p && typeof p === 'object' ? { paused: { ...(typeof p.note === 'string' ? { note: p.note } : {}), at: String(p.at ?? '') } } : {}),
    skipped: n(s.skipped),
    history: Array.isArray(s.history) ? s.history.flatMap((h) => runOf(h) ?? []) : [],
  };
}
