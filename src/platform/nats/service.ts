// ClientService makes a master a NATS micro service (`nats micro ls`, `info`,
// `stats`; `nc.services.client()`), with one endpoint per subject a master
// serves (the client subjects and task.report), in the `masters` queue group.
// It speaks the micro protocol itself (io.nats.micro.v1) rather than through
// nats.js's Service, for two reasons: each endpoint's queue subscription is a
// BudgetedQueue, so what a hung master can keep of the group is bounded; and the
// errors we answer ourselves (often later, by the leader) count in the
// endpoint's num_errors, which the library counts only for handler throws.

import type { Msg, NatsConnection, Subscription } from 'nats';
import { nuid } from 'nats';
import { performance } from 'node:perf_hooks';
import { json } from '#protocol/codec.js';
import { ClientSubject, isReplySubject, MASTERS_QUEUE, WorkerSubject, type RequestSubject } from '#protocol/subjects.js';
import { BudgetedQueue } from './budgeted-queue.js';

export const SERVICE_NAME = 'gaffer';
export const SERVICE_VERSION = '0.1.0';
const DESCRIPTION = 'gaffer control plane masters';
const API = '$SRV';
const VERBS = ['PING', 'INFO', 'STATS'] as const;

/** Endpoint names may not contain dots; the subject keeps them. */
export const ENDPOINTS: ReadonlyArray<{ name: string; subject: RequestSubject }> = [
  ...Object.values(ClientSubject),
  ...Object.values(WorkerSubject),
].map((subject) => ({ name: subject.replace('.', '-'), subject }));

interface Endpoint {
  name: string;
  subject: RequestSubject;
  queue: BudgetedQueue;
  requests: number;
  errors: number;
  lastError: string;
  /** Nanoseconds spent in the handler, as the micro protocol reports it. */
  processingNs: number;
}

export class ClientService {
  private readonly id = nuid.next();
  private readonly started = new Date().toISOString();
  private readonly endpoints: Endpoint[];
  private readonly control: Subscription[] = [];

  private constructor(
    private readonly nc: NatsConnection,
    private readonly metadata: Record<string, string>,
    onMessage: (subject: RequestSubject, msg: Msg) => void,
  ) {
    this.endpoints = ENDPOINTS.map((e) => {
      const ep: Endpoint = { ...e, queue: undefined as unknown as BudgetedQueue, requests: 0, errors: 0, lastError: '', processingNs: 0 };
      ep.queue = new BudgetedQueue(nc, e.subject, MASTERS_QUEUE, (msg) => {
        const t0 = performance.now();
        ep.requests++;
        try {
          onMessage(e.subject, msg);
        } catch {
          // onMessage answers its own errors; nothing may escape into nats.js.
        }
        ep.processingNs += Math.round((performance.now() - t0) * 1e6);
      });
      return ep;
    });
    for (const verb of VERBS) {
      for (const subject of [`${API}.${verb}`, `${API}.${verb}.${SERVICE_NAME}`, `${API}.${verb}.${SERVICE_NAME}.${this.id}`]) {
        // Only to an inbox, as every answer of ours: not wherever the sender points.
        this.control.push(nc.subscribe(subject, { callback: (err, msg) => !err && msg.reply && isReplySubject(msg.reply) && msg.respond(json.encode(this.answer(verb))) }));
      }
    }
  }

  static async start(nc: NatsConnection, id: string, onMessage: (subject: RequestSubject, msg: Msg) => void): Promise<ClientService> {
    const s = new ClientService(nc, { role: 'master', id }, onMessage);
    await nc.flush();
    return s;
  }

  private answer(verb: (typeof VERBS)[number]): unknown {
    const base = { name: SERVICE_NAME, id: this.id, version: SERVICE_VERSION, metadata: this.metadata };
    switch (verb) {
      case 'PING':
        return { type: 'io.nats.micro.v1.ping_response', ...base };
      case 'INFO':
        return {
          type: 'io.nats.micro.v1.info_response',
          ...base,
          description: DESCRIPTION,
          endpoints: this.endpoints.map((e) => ({ name: e.name, subject: e.subject, queue_group: MASTERS_QUEUE })),
        };
      case 'STATS':
        return {
          type: 'io.nats.micro.v1.stats_response',
          ...base,
          started: this.started,
          endpoints: this.endpoints.map((e) => ({
            name: e.name,
            subject: e.subject,
            queue_group: MASTERS_QUEUE,
            num_requests: e.requests,
            num_errors: e.errors,
            last_error: e.lastError,
            processing_time: e.processingNs,
            average_processing_time: e.requests > 0 ? Math.round(e.processingNs / e.requests) : 0,
          })),
        };
    }
  }

  /** countError adds one to num_errors of the endpoint for `subject`. */
  countError(subject: string, err: Error): void {
    const e = this.endpoints.find((x) => x.subject === subject);
    if (!e) return;
    e.errors++;
    e.lastError = err.message;
  }

  async stop(): Promise<void> {
    for (const s of this.control.splice(0)) s.unsubscribe();
    await Promise.all(this.endpoints.map((e) => e.queue.stop()));
  }
}
