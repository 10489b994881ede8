// Bus wraps the NATS connection: reconnect forever, notice disconnects fast,
// and answer requests in the encoding they arrived in.

import { connect, headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection } from 'nats';
import { contentTypeOf, ContentType, encode } from './codec.js';
import { Header } from './subjects.js';
import { InternalError, toWire, UnavailableError } from './errors.js';
import { logger } from './log.js';

export type { Msg, NatsConnection };

export interface BusOptions {
  url: string;
  name: string;
  user?: string;
  pass?: string;
  /** Give up after this many ms when the first connect fails (then the process exits). */
  connectTimeoutMs?: number;
}

/** connectBus opens a connection that, once up, retries without limit. */
export async function connectBus(opts: BusOptions): Promise<NatsConnection> {
  try {
    const nc = await connect({
      servers: opts.url.split(','),
      name: opts.name,
      ...(opts.user ? { user: opts.user } : {}),
      ...(opts.pass ? { pass: opts.pass } : {}),
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      timeout: opts.connectTimeoutMs ?? 3000,
      pingInterval: 5000,
      maxPingOut: 2,
    });
    const log = logger().child({ component: 'nats' });
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnect') log.info({ event: s.type, server: s.data }, 'nats connection');
      }
    })().catch(() => undefined);
    return nc;
  } catch (err) {
    throw new UnavailableError(`cannot reach NATS at ${opts.url}: ${(err as Error).message}`, { cause: err });
  }
}

export function requestType(h: MsgHdrs | undefined): ContentType {
  return contentTypeOf(h?.get(Header.contentType) || undefined);
}

function replyHeaders(type: ContentType): MsgHdrs | undefined {
  if (type === ContentType.json) return undefined;
  const h = natsHeaders();
  h.set(Header.contentType, type);
  return h;
}

/**
 * respond answers a request on its reply subject. A request without a reply
 * subject (a plain publish) has nobody to answer; that is not an error.
 */
export function respond(nc: NatsConnection, reply: string | undefined, type: ContentType, value: unknown): void {
  if (!reply || nc.isClosed()) return;
  const h = replyHeaders(type);
  try {
    nc.publish(reply, encode(value, type), h ? { headers: h } : undefined);
  } catch (err) {
    // Too large for the server's max_payload, most likely: say so rather than leave the client waiting.
    const error = new InternalError(`reply could not be sent: ${(err as Error).message}`);
    nc.publish(reply, encode({ ok: false, error: error.toWire() }, type), h ? { headers: h } : undefined);
  }
}

export function respondError(nc: NatsConnection, reply: string | undefined, type: ContentType, err: unknown): void {
  respond(nc, reply, type, { ok: false, error: toWire(err) });
}
