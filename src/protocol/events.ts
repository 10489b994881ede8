// Observable events: JSON on events.<kind>, so `nats sub 'events.>'` shows what
// the cluster does. Every payload carries `at` (ISO time) and who said it
// (`by`); platform/nats/events.ts publishes them.


export interface EventPayloads {
  'leader.elected': { leader: string; term: number };
  'leader.resigned': { leader: string; reason: string };
  'worker.joined': { worker: string; capacity: number };
  'worker.lost': { worker: string };
  'resource.placed': { name: string; id: string; worker: string };
  'resource.moved': { name: string; id: string; from: string; to: string | null };
  'resource.pending': { name: string; id: string };
  'resource.deleted': { name: string; id: string; worker: string | null };
  'task.started': { name: string; id: string; worker: string; taskKind: string };
  /** endedAt is when the task certainly stopped running: earlier than `at` when a paused worker fenced late. */
  'task.stopped': { name: string; id: string; worker: string; reason: string; endedAt: string };
}
export type EventKind = keyof EventPayloads;
export const EVENT_KINDS: readonly EventKind[] = [
  'leader.elected', 'leader.resigned', 'worker.joined', 'worker.lost', 'resource.placed',
  'resource.moved', 'resource.pending', 'resource.deleted', 'task.started', 'task.stopped',
];

export type GafferEvent<K extends EventKind = EventKind> = EventPayloads[K] & { kind: K; at: string; by: string };
