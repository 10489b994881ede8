// A process whose event loop stops turning cannot keep its leases: a master
// loses its leadership, a worker fences itself. When that happens the log
// should say why, so each process notes every turn that came much later than
// asked (a long synchronous task, or the OS not running us at all) and every
// long garbage collection pause.

import { PerformanceObserver, constants, performance } from 'node:perf_hooks';
import type { Logger } from './log.js';

/** The log lines, for tests and for reading logs. */
export const StallLog = { loop: 'event loop stalled', gc: 'long gc pause' } as const;

const TICK_MS = 100;
/** Turns later than this are logged: a third of the shortest lease validity (masters at --ttl 2 trust theirs 1.5 s). */
export const STALL_MS = 500;
/** Pauses of the collector longer than this are logged. */
const GC_MS = 100;

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

let installed = false;
const hooks = new Set<() => void>();
/** When the watcher's next turn is due (0: not watching). */
let nextDue = 0;

/** loopLagMs: how late the event loop is now, as the stall watcher sees it (0 when it is not on). */
export function loopLagMs(): number {
  return nextDue === 0 ? 0 : Math.max(0, performance.now() - nextDue);
}

/**
 * onStall runs fn first thing after a stall is noticed, before it is logged:
 * a worker resumed past its lease deadline fences at once instead of
 * whenever its own fence timer comes round. Returns the way to remove it.
 */
export function onStall(fn: () => void): () => void {
  hooks.add(fn);
  return () => hooks.delete(fn);
}

/** watchStalls logs late turns and long GC pauses for the whole process; a second call does nothing. */
export function watchStalls(log: Logger): void {
  if (installed) return;
  installed = true;
  let due = (nextDue = performance.now() + TICK_MS);
  setInterval(() => {
    const now = performance.now();
    const late = now - due;
    if (late > STALL_MS) {
      for (const fn of hooks) {
        try {
          fn();
        } catch (err) {
          log.error({ err: (err as Error).message }, 'stall hook failed');
        }
      }
      log.warn({ ms: Math.round(late) }, StallLog.loop);
    }
    due = nextDue = now + TICK_MS;
  }, TICK_MS).unref();
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration < GC_MS) continue;
      const kind = ((e as PerformanceEntry & { detail?: { kind?: number } }).detail)?.kind;
      log.warn({ ms: Math.round(e.duration), kind: kind === undefined ? 'unknown' : GC_KINDS[kind] ?? String(kind) }, StallLog.gc);
    }
  });
  obs.observe({ entryTypes: ['gc'] });
}
