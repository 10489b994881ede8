// Observable events: JSON on events.<kind>, so `nats sub 'events.>'` shows what
// the cluster does. Every payload carries `at` (ISO time) and who said it
// (`by`); platform/nats/events.ts publishes them.

import type { MoveReason } from './messages.js';

export interface EventPayloads {
  /** workers: the live workers the new leader knows, so the fleet can spread its resyncs by its own size. */
  'leader.elected': { leader: string; term: number; workers: number };
  'leader.resigned': { leader: string; reason: string };
  'worker.joined': { worker: string; capacity: number };
  'worker.lost': { worker: string };
  'worker.cordoned': { worker: string };
  'worker.uncordoned': { worker: string };
  /** A drain's moves are done: nothing of the worker's runs there any more (`remaining` could not move). */
  'worker.drained': { worker: string; moved: number; remaining: number };
  'resource.placed': { name: string; id: string; worker: string };
  'resource.moved': { name: string; id: string; from: string; to: string | null; reason: MoveReason };
  'resource.pending': { name: string; id: string };
  'resource.deleted': { name: string; id: string; worker: string | null };
  'task.started': { name: string; id: string; worker: string; taskKind: string; attempt: number };
  /** endedAt is when the task certainly stopped running: earlier than `at` when a paused worker fenced late. */
  'task.stopped': { name: string; id: string; worker: string; reason: string; endedAt: string };
  /** run resolved: the resource is completed. */
  'task.completed': { name: string; id: string; worker: string };
  /** An attempt failed; `failures` counts them since the last success. */
  'task.failed': { name: string; id: string; worker: string; error: string; failures: number };
  /** The next attempt starts on `worker` after delayMs. */
  'task.restarting': { name: string; id: string; worker: string; delayMs: number; attempt: number };
  /** What the task last reported (at most one per second per resource). */
  'task.progress': { name: string; id: string; worker: string; progress: unknown };
  /** A scheduled resource started run `run` for the fire time (ISO 8601). */
  'schedule.fired': { name: string; run: number; fireTime: string; cause: string };
  /** A fire did not start a run (why: overlap, catch-up window, paused); `count` fires from fireTime to `until`. */
  'schedule.skipped': { name: string; fireTime: string; why: string; count: number; until?: string };
  'schedule.paused': { name: string; note?: string };
  'schedule.resumed': { name: string; note?: string };
  'run.completed': { name: string; run: number; fireTime: string };
  'run.failed': { name: string; run: number; fireTime: string; error: string };
}
export type EventKind = keyof EventPayloads;
export const EVENT_KINDS: readonly EventKind[] = [
  'leader.elected', 'leader.resigned', 'worker.joined', 'worker.lost', 'worker.cordoned', 'worker.uncordoned', 'worker.drained', 'resource.placed',
  'resource.moved', 'resource.pending', 'resource.deleted', 'task.started', 'task.stopped',
  'task.completed', 'task.failed', 'task.restarting', 'task.progress',
  'schedule.fired', 'schedule.skipped', 'schedule.paused', 'schedule.resumed', 'run.completed', 'run.failed',
];

export type GafferEvent<K extends EventKind = EventKind> = EventPayloads[K] & { kind: K; at: string; by: string };

/**
 * electedFleet reads the fleet size from a leader.elected payload; undefined
 * for anything else (an older master's event, or not JSON), which a worker
 * treats as a fleet of unknown size.
 */
export function electedFleet(data: Uint8Array): number | undefined {
  try {
    const v = (JSON.parse(new TextDecoder().decode(data)) as { workers?: unknown }).workers;
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  } catch {
    return undefined;
  }
}
