// ClientRequest is a validated client request together with what is needed
// to answer it from anywhere (its reply subject and encoding) or to forward
// it unchanged (its raw bytes).

import { headers as natsHeaders, type MsgHdrs } from 'nats';
import { decodeRequest, type ContentType } from './codec.js';
import { BadRequestError } from './errors.js';
import { ClientSubject, Header, isClientSubject } from './subjects.js';
import { validateAdd, validateEmpty, validateNameRequest, type Spec } from './protocol.js';
import { requestType } from './bus.js';

export type Command =
  | { op: 'add'; name: string; spec: Spec }
  | { op: 'delete'; name: string }
  | { op: 'get'; name: string }
  | { op: 'list' }
  | { op: 'status' };

export interface ClientRequest {
  subject: ClientSubject;
  command: Command;
  type: ContentType;
  data: Uint8Array;
  reply: string | undefined;
}

export function parseCommand(subject: ClientSubject, body: unknown): Command {
  switch (subject) {
    case ClientSubject.add:
      return { op: 'add', ...validateAdd(body) };
    case ClientSubject.delete:
      return { op: 'delete', ...validateNameRequest(body) };
    case ClientSubject.get:
      return { op: 'get', ...validateNameRequest(body) };
    case ClientSubject.list:
      validateEmpty(body);
      return { op: 'list' };
    case ClientSubject.status:
      validateEmpty(body);
      return { op: 'status' };
  }
}

/** parseRequest validates a message; throws BadRequestError (answerable in `type`) when it is not a valid request. */
export function parseRequest(
  subject: string,
  data: Uint8Array,
  headers: MsgHdrs | undefined,
  reply: string | undefined,
): ClientRequest {
  const type = requestType(headers);
  if (!isClientSubject(subject)) throw new BadRequestError(`unknown subject ${JSON.stringify(subject)}`);
  return { subject, command: parseCommand(subject, decodeRequest(data, type)), type, data, reply };
}

/** forwardHeaders carries the original subject and encoding across the hop to the leader. */
export function forwardHeaders(req: ClientRequest, origin: string): MsgHdrs {
  const h = natsHeaders();
  h.set(Header.subject, req.subject);
  h.set(Header.contentType, req.type);
  h.set(Header.origin, origin);
  return h;
}

/** forwardedSubject reads the original client subject off a forwarded message. */
export function forwardedSubject(headers: MsgHdrs | undefined): string {
  return headers?.get(Header.subject) ?? '';
}
