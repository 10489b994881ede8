// The Bus port on NATS: a connection that reconnects forever and notices
// disconnects fast, NatsBus over it, and answering requests in the encoding
// they arrived in.

import { readFileSync } from 'node:fs';
import { connect, ErrorCode as NatsErrorCode, headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type TlsOptions } from 'nats';
import { ContentType, encode } from '#protocol/codec.js';
import { Header, isReplySubject } from '#protocol/subjects.js';
import { InternalError, NoRespondersError, TimeoutError, toWire, UnavailableError } from '#protocol/errors.js';
import type { Bus, BusMsg, BusStatus } from '../ports.js';
import { logger } from '../log.js';
import { parseNatsUrls, UsageError, type TlsFiles } from '../config.js';

export type { Msg, NatsConnection };

export interface BusOptions {
  /** One NATS URL or several, comma-separated: the servers to connect and reconnect to. */
  url: string;
  /** Try the servers in the order given (the first one first) instead of shuffled. */
  noRandomize?: boolean;
  name: string;
  user?: string | undefined;
  pass?: string | undefined;
  /** TLS: PEM files of the CA to trust and an optional client certificate. */
  tls?: TlsFiles;
  /** Give up after this many ms when the first connect fails (then the process exits). */
  connectTimeoutMs?: number;
}

/** An inbox prefix token: what the per-user `_INBOX_<user>` prefix may be built from. */
const INBOX_USER_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * inboxPrefixFor is the inbox prefix of a connection logged in as `user`:
 * `_INBOX_<user>`, so replies to it land where nats.conf lets only that user
 * subscribe (`_INBOX_<user>.>`), not in the `_INBOX.>` every user could read.
 * Without a user, or with one that is not a plain token, nats.js's default
 * `_INBOX` stays.
 */
export function inboxPrefixFor(user: string | undefined): string | undefined {
  return user && INBOX_USER_RE.test(user) ? `_INBOX_${user}` : undefined;
}

/** natsTls reads the PEM files for nats.js; an unreadable file is a usage error, not an unreachable server. */
function natsTls(files: TlsFiles): TlsOptions {
  const read = (path: string, flag: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ${flag} ${JSON.stringify(path)}: ${(err as Error).message}`);
    }
  };
  return {
    ...(files.caFile ? { ca: read(files.caFile, '--nats-ca') } : {}),
    ...(files.certFile ? { cert: read(files.certFile, '--nats-cert') } : {}),
    ...(files.keyFile ? { key: read(files.keyFile, '--nats-key') } : {}),
  };
}

/**
 * connectBus opens a connection that, once up, retries without limit, over
 * every server in the list (and those the cluster announces). With a user,
 * its inbox prefix is the user's own (inboxPrefixFor); with tls, the
 * connection is TLS or nothing. A malformed URL list is a UsageError.
 */
export async function connectBus(opts: BusOptions): Promise<NatsConnection> {
  const servers = parseNatsUrls(opts.url);
  const tls = opts.tls ? natsTls(opts.tls) : undefined;
  const inboxPrefix = inboxPrefixFor(opts.user);
  try {
    const nc = await connect({
      servers,
      ...(opts.noRandomize ? { noRandomize: true } : {}),
      name: opts.name,
      ...(opts.user ? { user: opts.user } : {}),
      ...(opts.pass ? { pass: opts.pass } : {}),
      ...(inboxPrefix ? { inboxPrefix } : {}),
      ...(tls ? { tls } : {}),
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      timeout: opts.connectTimeoutMs ?? 3000,
      pingInterval: 5000,
      maxPingOut: 2,
      // nats.js otherwise captures two stacks per request (where it began, and
      // a timeout error made up front) just in case it fails: 1.3 s of a
      // worker pool's 43 s of CPU in a 100k run. Our errors carry their own context.
      noAsyncTraces: true,
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

/** NatsBus is the Bus port over one NATS connection; `nc` stays reachable for what the port does not cover (services, JetStream). */
export class NatsBus implements Bus {
  constructor(readonly nc: NatsConnection) {}

  get closed(): boolean {
    return this.nc.isClosed();
  }

  publish(subject: string, data: Uint8Array, opts?: { reply?: string | undefined; headers?: MsgHdrs | undefined }): void {
    if (this.nc.isClosed()) return;
    this.nc.publish(subject, data, {
      ...(opts?.reply ? { reply: opts.reply } : {}),
      ...(opts?.headers ? { headers: opts.headers } : {}),
    });
  }

  async request(subject: string, data: Uint8Array, opts: { timeoutMs: number; headers?: MsgHdrs }): Promise<BusMsg> {
    try {
      return await this.nc.request(subject, data, { timeout: opts.timeoutMs, ...(opts.headers ? { headers: opts.headers } : {}) });
    } catch (err) {
      throw requestError(subject, opts.timeoutMs, err);
    }
  }

  subscribe(subject: string, fn: (msg: BusMsg) => void, opts?: { queue?: string }): { unsubscribe(): void } {
    return this.nc.subscribe(subject, {
      ...(opts?.queue ? { queue: opts.queue } : {}),
      callback: (err, msg) => {
        if (err) return;
        try {
          fn(msg);
        } catch (e) {
          logger().error({ err: e, subject }, 'subscriber threw; message dropped');
        }
      },
    });
  }

  onStatus(fn: (s: BusStatus) => void): () => void {
    let stopped = false;
    void (async () => {
      for await (const s of this.nc.status()) {
        if (stopped) return;
        if (s.type === 'disconnect' || s.type === 'reconnect') fn(s.type);
        // nats.js reports every INFO the server pushes as an update (empty
        // lists included, for servers we were given rather than told about);
        // a connected server pushes one when a route to another comes or goes.
        else if (s.type === 'update') fn('cluster');
      }
    })().catch(() => undefined);
    return () => {
      stopped = true;
    };
  }

  flush(): Promise<void> {
    return this.nc.flush();
  }
}

/** requestError maps a nats.js request failure to our typed errors, by code. */
export function requestError(subject: string, timeoutMs: number, err: unknown): Error {
  const code = (err as { code?: string }).code;
  if (code === NatsErrorCode.NoResponders) return new NoRespondersError(`nobody serves ${subject}`, { cause: err });
  if (code === NatsErrorCode.Timeout) return new TimeoutError(`${subject} got no reply within ${timeoutMs} ms`, { cause: err });
  return new UnavailableError(`${subject}: ${(err as Error).message}`, { cause: err });
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
/** respond answers a request, on its reply subject if that is an inbox (see isReplySubject), and nowhere else. */
export function respond(bus: Bus, reply: string | undefined, type: ContentType, value: unknown): void {
  if (!reply || !isReplySubject(reply) || bus.closed) return;
  const headers = replyHeaders(type);
  try {
    bus.publish(reply, encode(value, type), { headers });
  } catch (err) {
    // Too large for the server's max_payload, most likely: say so rather than leave the client waiting.
    const error = new InternalError(`reply could not be sent: ${(err as Error).message}`);
    bus.publish(reply, encode({ ok: false, error: error.toWire() }, type), { headers });
  }
}

export function respondError(bus: Bus, reply: string | undefined, type: ContentType, err: unknown): void {
  respond(bus, reply, type, { ok: false, error: toWire(err) });
}
