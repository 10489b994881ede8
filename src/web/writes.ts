// The dashboard's writes: POST /api/schedule/<pause|resume|trigger> with a
// JSON body {name, note?}, sent on through the typed client like any other
// client's request (the leader fences it and dedupes it by request id, so a
// retried call runs once).
//
// A browser will send a request to this server from any page it visits, so
// a write is refused (403) unless it is plainly the dashboard's own:
// - writes are on only where the dashboard listens on a loopback address
//   (or when told so): anyone who can reach a dashboard exposed on a network
//   could use them otherwise, and this server checks no login;
// - the Host header names this server as it listens (127.0.0.1, localhost or
//   ::1 and its port): a DNS-rebinding page reaches us under its own name;
// - the Origin header is this server's own origin: a cross-site page sends
//   its own (browsers always send Origin on POST);
// - the body is application/json: a cross-site form cannot send that type
//   without a CORS preflight, which this server never grants.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { GafferClient } from '#client/client.js';
import { BadRequestError, GafferError, toWire } from '#protocol/errors.js';
import type { ScheduleAction } from '#protocol/schedule-ops.js';
import type { NatsConnection } from 'nats';

const ACTIONS: ReadonlySet<string> = new Set<ScheduleAction>(['pause', 'resume', 'trigger']);
const MAX_BODY = 4096;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export const WRITE_PREFIX = '/api/schedule/';

/** ForbiddenWriteError: a write that does not come from the dashboard's own page. */
export class ForbiddenWriteError extends GafferError {
  override name = 'ForbiddenWriteError';
  constructor(message: string) {
    super('BAD_REQUEST', message);
  }
}

/** writesAllowed: by default only a dashboard on a loopback address takes writes. */
export function writesAllowed(host: string, override?: boolean): boolean {
  return override ?? LOOPBACK.has(host);
}

export class DashboardWrites {
  private readonly client: GafferClient;

  constructor(nc: NatsConnection, private readonly port: () => number, readonly enabled: boolean, timeoutMs = 5000) {
    this.client = new GafferClient(nc, { timeoutMs });
  }

  /** check says why a request may not write, or undefined when it may. */
  check(req: IncomingMessage): string | undefined {
    if (!this.enabled) return 'this dashboard takes no writes (it listens beyond loopback)';
    const host = req.headers.host ?? '';
    const port = String(this.port());
    const m = /^(\[[0-9a-f:]+\]|[^:]+):(\d+)$/i.exec(host);
    if (!m || m[2] !== port || !LOOPBACK.has(m[1]!.toLowerCase())) return `Host ${JSON.stringify(host)} is not this dashboard`;
    if (req.headers.origin !== `http://${host}`) return 'the Origin header is not this dashboard';
    if (!/^application\/json(;|$)/i.test(req.headers['content-type'] ?? '')) return 'the body must be application/json';
    return undefined;
  }

  /** handle answers POST /api/schedule/<action>. */
  handle(req: IncomingMessage, res: ServerResponse, path: string, send: (code: number, body: unknown) => void): void {
    const action = path.slice(WRITE_PREFIX.length);
    if (req.method !== 'POST' || !ACTIONS.has(action)) {
      res.writeHead(405, { Allow: 'POST', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    const why = this.check(req);
    if (why) return send(403, { ok: false, error: new ForbiddenWriteError(why).toWire() });
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      void this.write(action as ScheduleAction, Buffer.concat(chunks).toString('utf8')).then(
        (body) => send(200, { ok: true, ...body }),
        (err: unknown) => send(err instanceof BadRequestError || (err instanceof GafferError && err.code === 'BAD_REQUEST') ? 400 : 409, { ok: false, error: toWire(err) }),
      );
    });
  }

  private async write(action: ScheduleAction, text: string): Promise<object> {
    let body: { name?: unknown; note?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new BadRequestError('the body is not JSON');
    }
    if (!body || typeof body !== 'object') throw new BadRequestError('the body must be a JSON object');
    const name = typeof body.name === 'string' ? body.name : '';
    const note = typeof body.note === 'string' && action !== 'trigger' ? { note: body.note } : {};
    // The masters validate the rest as they do for any client.
    return this.client.schedule(action, { name, ...note });
  }
}
