// publishEvent puts one observable event on events.<kind>, as JSON, so
// `nats sub 'events.>'` shows what the cluster does.

import { json } from '#protocol/codec.js';
import { subjects } from '#protocol/subjects.js';
import type { EventKind, EventPayloads } from '#protocol/events.js';
import type { Bus } from '../ports.js';

export function publishEvent<K extends EventKind>(bus: Bus, by: string, kind: K, payload: EventPayloads[K], wallMs = Date.now()): void {
  if (bus.closed) return;
  bus.publish(subjects.event(kind), json.encode({ kind, at: new Date(wallMs).toISOString(), by, ...payload }));
}
