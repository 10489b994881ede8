// Answering a batch: each client directly on its reply subject, in the
// encoding it asked in, and each forwarding master once per batch with the
// ids of its requests that were answered (master.ack.<id>), so it can stop
// tracking them; and answering TIMEOUT the requests that waited past their
// clients' timeouts.

import { packed } from '#protocol/codec.js';
import { subjects } from '#protocol/subjects.js';
import type { AckMessage } from '#protocol/messages.js';
import { expired, type ClientRequest } from '#protocol/request.js';
import { TimeoutError } from '#protocol/errors.js';
import { respond } from '#platform/nats/bus.js';
import type { Bus } from '#platform/ports.js';
import type { WireReply } from './core/batch.js';

export interface Answered {
  req: ClientRequest;
  reply: WireReply;
}

/** answer replies to each client and acks forwarded requests to their masters. */
export function answer(bus: Bus, leaderId: string, done: readonly Answered[]): void {
  for (const { req, reply } of done) respond(bus, req.reply, req.type, reply);
  const byOrigin = new Map<string, AckMessage>();
  for (const { req, reply } of done) {
    if (!req.origin || req.origin === leaderId || !req.id) continue;
    const ack = byOrigin.get(req.origin) ?? { ids: [], errors: [] };
    ack.ids.push(req.id);
    if (!reply.ok) ack.errors.push(req.id);
    byOrigin.set(req.origin, ack);
  }
  for (const [origin, ack] of byOrigin) bus.publish(subjects.masterAck(origin), packed.encode(ack));
}

/**
 * lateAnswers answers TIMEOUT the requests whose clients stopped waiting
 * while they queued (Header.timeoutMs): they are not planned. A fleet
 * re-sending its reports to a leader that is behind would otherwise queue
 * each again and again, and the leader's work and memory grow every round.
 */
export function lateAnswers(reqs: readonly ClientRequest[], now: number): Answered[] {
  return reqs.filter((req) => expired(req, now)).map((req) => timedOut(req, `waited ${Math.round(now - req.receivedAt)} ms at the leader, past its ${req.timeoutMs} ms`));
}

/** supersededAnswer answers TIMEOUT a report request whose worker sent a newer one (queued-reports.ts). */
export function supersededAnswer(req: ClientRequest): Answered {
  return timedOut(req, 'superseded by a newer report request from the same worker');
}

function timedOut(req: ClientRequest, message: string): Answered {
  return { req, reply: { ok: false, error: new TimeoutError(message).toWire() } };
}
