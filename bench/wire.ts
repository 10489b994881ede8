// Wire: how the benchmark talks to NATS. Every measured request goes through
// `request` below, the same way for floors and for gaffer, so the two compare:
// a JSON body, a Content-Type header, one nats.js request with a deadline.

import { connect, headers as natsHeaders, type MsgHdrs, type NatsConnection } from 'nats';
import { ContentType, json } from '#protocol/codec.js';
import { Header, subjects } from '#protocol/subjects.js';

export async function benchConnect(url: string, name: string): Promise<NatsConnection> {
  return connect({ servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
}

/** clientHeaders are what GafferClient sends. */
export function clientHeaders(): MsgHdrs {
  const h = natsHeaders();
  h.set(Header.contentType, ContentType.json);
  return h;
}

/** leaderHeaders are what a follower adds when it re-publishes to master.leader.<id>. */
export function leaderHeaders(subject: string): MsgHdrs {
  const h = natsHeaders();
  h.set(Header.subject, subject);
  h.set(Header.contentType, ContentType.json);
  return h;
}

export class ReplyError extends Error {
  override name = 'ReplyError';
}

/** request sends body as JSON; with `gaffer` it also requires an `{ok:true}` reply and returns it. */
export async function request(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  o: { headers?: MsgHdrs; timeoutMs?: number; gaffer?: boolean } = {},
): Promise<Record<string, unknown>> {
  const m = await nc.request(subject, json.encode(body), { timeout: o.timeoutMs ?? 5000, headers: o.headers ?? clientHeaders() });
  if (!o.gaffer) return {};
  const r = json.decode(m.data) as Record<string, unknown>;
  if (r?.ok !== true) {
    const e = r?.error as { code?: string; message?: string } | undefined;
    throw new ReplyError(`${e?.code ?? 'BAD_REPLY'}: ${e?.message ?? JSON.stringify(r).slice(0, 200)}`);
  }
  return r;
}

/** toLeader sends a client command straight to a leader, as a follower would forward it. */
export function toLeader(nc: NatsConnection, leaderId: string, subject: string, body: unknown, timeoutMs = 5000): Promise<Record<string, unknown>> {
  return request(nc, subjects.leader(leaderId), body, { headers: leaderHeaders(subject), timeoutMs, gaffer: true });
}

/** runId makes resource names unique across runs against the same etcd. */
export const runId = Date.now().toString(36);
