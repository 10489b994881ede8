// Client requests as a master hands them to the leader, for unit tests.

import { ContentType } from '#protocol/codec.js';
import { ClientSubject, WorkerSubject } from '#protocol/subjects.js';
import type { ClientRequest, Command } from '#protocol/request.js';

const SUBJECT: Record<Command['op'], ClientRequest['subject']> = {
  add: ClientSubject.add,
  delete: ClientSubject.delete,
  get: ClientSubject.get,
  list: ClientSubject.list,
  status: ClientSubject.status,
  restart: ClientSubject.restart,
  explain: ClientSubject.explain,
  cordon: ClientSubject.cordon,
  uncordon: ClientSubject.uncordon,
  drain: ClientSubject.drain,
  report: WorkerSubject.report,
  schedule: ClientSubject.scheduleTrigger,
  apply: ClientSubject.apply,
};

let n = 0;

/** request builds a validated request whose reply goes to `_INBOX.t.<id>`. */
export function request(command: Command, opts: { id?: string; origin?: string; receivedAt?: number } = {}): ClientRequest {
  const id = opts.id ?? `r${++n}`;
  return {
    subject: SUBJECT[command.op],
    command,
    type: ContentType.json,
    data: new TextEncoder().encode(JSON.stringify(command)),
    reply: `_INBOX.t.${id}`,
    id,
    ...(opts.origin ? { origin: opts.origin } : {}),
    receivedAt: opts.receivedAt ?? 0,
  };
}

export const add = (name: string, opts?: Parameters<typeof request>[1]) => request({ op: 'add', name, spec: {} }, opts);
export const del = (name: string, opts?: Parameters<typeof request>[1]) => request({ op: 'delete', name }, opts);
export const get = (name: string, opts?: Parameters<typeof request>[1]) => request({ op: 'get', name }, opts);
