// ClientRequest is a validated client request together with what is needed
// to answer it from anywhere (its reply subject and encoding) or to forward
// it unchanged (its raw bytes).

import { randomBytes } from 'node:crypto';
import { headers as natsHeaders, type MsgHdrs } from 'nats';
import { contentTypeOf, decodeRequest, type ContentType } from './codec.js';
import { BadRequestError } from './errors.js';
import { ClientSubject, Header, INBOX_PREFIX, isReplySubject, isRequestSubject, WorkerSubject, type RequestSubject } from './subjects.js';
import { validateReportRequest } from './validate-report.js';
import { validateAdd, validateDrain, validateEmpty, validateList, validateNameRequest, validateWorkerRequest } from './validate.js';
import { validateScheduleRequest, type ScheduleAction, type ScheduleRequest } from './schedule-ops.js';
import { ID_RE, type DrainRequest, type ListRequest, type ReportRequest, type Spec } from './messages.js';
import { MAX_APPLY_BYTES, validateApply, type ApplyRequest } from './apply.js';

export type Command =
  | { op: 'add'; name: string; spec: Spec; dryRun?: boolean }
  | { op: 'delete'; name: string }
  | { op: 'get'; name: string }
  | ({ op: 'list' } & ListRequest)
  | { op: 'status' }
  | { op: 'restart'; name: string }
  | { op: 'explain'; name: string }
  | { op: 'cordon'; worker: string }
  | { op: 'uncordon'; worker: string }
  | ({ op: 'drain' } & DrainRequest)
  | ({ op: 'schedule'; action: ScheduleAction } & ScheduleRequest)
  | ({ op: 'apply' } & ApplyRequest)
  /** A worker's reports about its tasks (task.report). */
  | ({ op: 'report' } & ReportRequest);

export interface ClientRequest {
  subject: RequestSubject;
  command: Command;
  type: ContentType;
  data: Uint8Array;
  reply: string | undefined;
  /** Idempotency key: the client's, or one the receiving master made up. */
  id: string;
  /** The master that received it from the client and awaits the leader's ack; absent when the leader received it. */
  origin?: string;
  /** Clock time (monotonic ms) when this process received it. */
  receivedAt: number;
  /** How long the client waits (Header.timeoutMs); absent: as long as it takes. */
  timeoutMs?: number;
}

/** The longest Gaffer-Timeout-Ms accepted: an hour. */
const MAX_TIMEOUT_MS = 3_600_000;

/** expired: the client of `req` has stopped waiting for it by `now`. */
export function expired(req: ClientRequest, now: number): boolean {
  return req.timeoutMs !== undefined && now - req.receivedAt > req.timeoutMs;
}

const REQUEST_ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
const boot = randomBytes(4).toString('hex');
let seq = 0;

/** newRequestId is unique across masters and their restarts. */
export function newRequestId(masterId: string): string {
  return `${masterId}.${boot}.${(++seq).toString(36)}`;
}

/** requestType is the encoding a request arrived in (and is answered in): JSON unless its Content-Type says msgpack. */
export function requestType(h: MsgHdrs | undefined): ContentType {
  return contentTypeOf(h?.get(Header.contentType) || undefined);
}

export function parseCommand(subject: RequestSubject, body: unknown): Command {
  switch (subject) {
    case ClientSubject.add:
      return { op: 'add', ...validateAdd(body) };
    case ClientSubject.delete:
      return { op: 'delete', ...validateNameRequest(body) };
    case ClientSubject.get:
      return { op: 'get', ...validateNameRequest(body) };
    case ClientSubject.list:
      return { op: 'list', ...validateList(body) };
    case ClientSubject.status:
      validateEmpty(body);
      return { op: 'status' };
    case ClientSubject.restart:
      return { op: 'restart', ...validateNameRequest(body) };
    case ClientSubject.explain:
      return { op: 'explain', ...validateNameRequest(body) };
    case ClientSubject.cordon:
      return { op: 'cordon', ...validateWorkerRequest(body) };
    case ClientSubject.uncordon:
      return { op: 'uncordon', ...validateWorkerRequest(body) };
    case ClientSubject.drain:
      return { op: 'drain', ...validateDrain(body) };
    case ClientSubject.schedulePause:
      return { op: 'schedule', action: 'pause', ...validateScheduleRequest('pause', body) };
    case ClientSubject.scheduleResume:
      return { op: 'schedule', action: 'resume', ...validateScheduleRequest('resume', body) };
    case ClientSubject.scheduleTrigger:
      return { op: 'schedule', action: 'trigger', ...validateScheduleRequest('trigger', body) };
    case ClientSubject.scheduleBackfill:
      return { op: 'schedule', action: 'backfill', ...validateScheduleRequest('backfill', body) };
    case WorkerSubject.report:
      return { op: 'report', ...validateReportRequest(body) };
    case ClientSubject.apply:
      return { op: 'apply', ...validateApply(body) };
  }
}


export class ForeignReplyError extends BadRequestError {
  override name = 'ForeignReplyError';
  constructor(reply: string) {
    super(`reply subject ${JSON.stringify(reply.slice(0, 64))} is not an inbox (${INBOX_PREFIX}… or _INBOX_<user>.…); not answered`);
  }
}

/** parseRequest validates a message; throws BadRequestError (answerable in `type`) when it is not a valid request. */
export function parseRequest(
  subject: string,
  data: Uint8Array,
  headers: MsgHdrs | undefined,
  reply: string | undefined,
  receivedAt: number,
): ClientRequest {
  const type = requestType(headers);
  if (reply !== undefined && !isReplySubject(reply)) throw new ForeignReplyError(reply);
  if (!isRequestSubject(subject)) throw new BadRequestError(`unknown subject ${JSON.stringify(subject)}`);
  const command = parseCommand(subject, decodeRequest(data, type, subject === ClientSubject.apply ? MAX_APPLY_BYTES : undefined));
  const id = headers?.get(Header.requestId) || undefined;
  if (id !== undefined && !REQUEST_ID_RE.test(id)) {
    throw new BadRequestError(`invalid ${Header.requestId} header: must match ${REQUEST_ID_RE.source}`);
  }
  const origin = headers?.get(Header.origin) || undefined;
  // The leader acks to master.ack.<origin>: anything but a process id would corrupt that subject.
  if (origin !== undefined && !ID_RE.test(origin)) {
    throw new BadRequestError(`invalid ${Header.origin} header: must match ${ID_RE.source}`);
  }
  const timeout = headers?.get(Header.timeoutMs) || undefined;
  const timeoutMs = timeout === undefined ? undefined : Number(timeout);
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs >= 1 && timeoutMs <= MAX_TIMEOUT_MS)) {
    throw new BadRequestError(`invalid ${Header.timeoutMs} header: must be a whole number of ms from 1 to ${MAX_TIMEOUT_MS}`);
  }
  return { subject, command, type, data, reply, id: id ?? '', ...(origin ? { origin } : {}), receivedAt, ...(timeoutMs ? { timeoutMs } : {}) };
}

/** forwardHeaders carries the original subject and encoding across the hop to the leader. */
export function forwardHeaders(req: ClientRequest, origin: string): MsgHdrs {
  const h = natsHeaders();
  h.set(Header.subject, req.subject);
  h.set(Header.contentType, req.type);
  h.set(Header.origin, origin);
  h.set(Header.requestId, req.id);
  if (req.timeoutMs !== undefined) h.set(Header.timeoutMs, String(req.timeoutMs));
  return h;
}

/** forwardedSubject reads the original client subject off a forwarded message. */
export function forwardedSubject(headers: MsgHdrs | undefined): string {
  return headers?.get(Header.subject) ?? '';
}
