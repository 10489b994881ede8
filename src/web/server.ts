// The dashboard's HTTP server (node:http only), served by every master:
//
//   GET /                 index.html
//   GET /assets/<file>    the app's own files (src/web/public/)
//   GET /vendor/<file>    allow-listed preact and htm modules from node_modules
//   GET /api/state        { status, resources, next, servedBy } through the typed client: the status with its
//                         counts, and the first page of resources; 503 with the error code on failure
//   GET /api/resources    ?after=&state=&worker=&kind=&prefix=&label=k=v: one page of resources, filtered by the leader
//   GET /api/events       server-sent events: every message on events.>
//   POST /api/schedule/<pause|resume|trigger>   a schedule operation, guarded (writes.ts)
//
// HEAD is answered like GET without a body; any other method is 405 and any
// other path 404. It listens on 127.0.0.1 unless told otherwise
// (GAFFER_HTTP_HOST=0.0.0.0 exposes it, like the metrics server).

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { NatsConnection } from 'nats';
import { ErrorCode, toWire } from '#protocol/errors.js';
import type { ListFilter } from '#protocol/list-query.js';
import { logger, type Logger } from '#platform/log.js';
import { loadAssets, type Asset } from './assets.js';
import { contentSecurityPolicy, securityHeaders } from './csp.js';
import { EventStream } from './event-stream.js';
import { StateSource } from './state.js';
import { DashboardWrites, WRITE_PREFIX, writesAllowed } from './writes.js';

export interface DashboardOptions {
  nc: NatsConnection;
  /** 0 picks a free port. */
  port: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** This master's id, reported as `servedBy`. */
  id: string;
  /** SSE heartbeat interval (default 15 s). */
  heartbeatMs?: number;
  /** Deadline of one /api/state read, retries included (default 5 s). */
  stateTimeoutMs?: number;
  /** Take schedule writes (default: only when listening on a loopback address). */
  writes?: boolean;
  /** Where the app's files are (default: public/ beside this module). */
  publicDir?: string;
  log?: Logger;
}

export interface Dashboard {
  readonly url: string;
  readonly port: number;
  /** close ends every event stream, stops listening and drops open connections. */
  close(): Promise<void>;
}

/** dashboardHost: where --http-port listens; GAFFER_HTTP_HOST=0.0.0.0 exposes it (in containers). */
export function dashboardHost(env: NodeJS.ProcessEnv = process.env): { host?: string } {
  const host = env.GAFFER_HTTP_HOST;
  return host ? { host } : {};
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * startDashboard serves the dashboard on host:port. It resolves once
 * listening and rejects if it cannot listen or its files are missing.
 */
export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log ?? logger().child({ component: 'web' });
  const assets = loadAssets(opts.publicDir);
  const headers = securityHeaders(contentSecurityPolicy(assets.index.body.toString('utf8')));
  const state = new StateSource(opts.nc, opts.id, opts.stateTimeoutMs);
  const events = new EventStream(opts.nc, { servedBy: opts.id, ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}) });
  let port = 0;
  const writes = new DashboardWrites(opts.nc, () => port, writesAllowed(host, opts.writes), opts.stateTimeoutMs);

  const sendAsset = (req: IncomingMessage, res: ServerResponse, a: Asset | undefined): void => {
    if (!a) return notFound(res, headers);
    const h = { ...headers, 'Content-Type': a.type, 'Cache-Control': 'no-cache', ETag: a.etag };
    if (req.headers['if-none-match'] === a.etag) {
      res.writeHead(304, h).end();
      return;
    }
    res.writeHead(200, { ...h, 'Content-Length': String(a.body.length) });
    res.end(req.method === 'HEAD' ? undefined : a.body);
  };

  const apiState: Handler = (req, res) => {
    state.fetch().then(
      (s) => sendJson(req, res, 200, { ...s, writable: writes.enabled }, headers),
      (err: unknown) => sendJson(req, res, 503, { ok: false, error: toWire(err) }, headers),
    );
  };

  const apiResources: Handler = (req, res) => {
    const q = new URL(req.url ?? '/', 'http://dashboard').searchParams;
    const filter = filterOf(q);
    state.page(q.get('after') || undefined, filter).then(
      (p) => sendJson(req, res, 200, p, headers),
      (err: unknown) => {
        const e = toWire(err);
        sendJson(req, res, e.code === ErrorCode.BAD_REQUEST ? 400 : 503, { ok: false, error: e }, headers);
      },
    );
  };

  const route = (path: string): Handler | undefined => {
    if (path === '/' || path === '/index.html') return (req, res) => sendAsset(req, res, assets.index);
    if (path === '/api/state') return apiState;
    if (path === '/api/resources') return apiResources;
    if (path === '/api/events') return (req, res) => events.attach(req, res, headers);
    const [, dir, name, ...rest] = path.split('/');
    if (rest.length > 0 || !name) return undefined;
    // Exact names from the maps only: no decoding, no joining onto a directory.
    if (dir === 'assets' && assets.app.has(name)) return (req, res) => sendAsset(req, res, assets.app.get(name));
    if (dir === 'vendor' && assets.vendor.has(name)) return (req, res) => sendAsset(req, res, assets.vendor.get(name));
    return undefined;
  };

  const server = createServer((req, res) => {
    const path = pathOf(req.url);
    if (path?.startsWith(WRITE_PREFIX)) return writes.handle(req, res, path, (code, body) => sendJson(req, res, code, body, headers));
    const handler = path === undefined ? undefined : route(path);
    if (!handler) return notFound(res, headers);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...headers, Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    try {
      handler(req, res);
    } catch (err) {
      log.error({ err: (err as Error).message, path }, 'dashboard request failed');
      if (!res.headersSent) sendJson(req, res, 500, { ok: false, error: toWire(err) }, headers);
      else res.destroy();
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    events.close();
    throw err;
  });
  server.on('error', (err) => log.warn({ err: err.message }, 'dashboard server error'));

  port = (server.address() as { port: number }).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/`;
  log.info({ url }, 'dashboard listening');
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close: () =>
      (closing ??= new Promise<void>((done) => {
        events.close();
        server.close(() => done());
        server.closeAllConnections();
      })),
  };
}

/** filterOf reads list filters off a query string as they are; the leader validates them. */
function filterOf(q: URLSearchParams): ListFilter {
  const f: Record<string, unknown> = {};
  for (const k of ['state', 'worker', 'kind', 'prefix'] as const) {
    const v = q.get(k);
    if (v !== null && v !== '') f[k] = v;
  }
  // "-": on no worker (pending), which the leader calls "".
  if (f.worker === '-') f.worker = '';
  const labels = q.getAll('label').map((l) => l.split('='));
  if (labels.length > 0) f.labels = Object.fromEntries(labels.map(([k, ...v]) => [k, v.join('=')]));
  return f as ListFilter;
}

/** pathOf is the request's path without query; undefined if the URL cannot be parsed. */
function pathOf(raw: string | undefined): string | undefined {
  try {
    return new URL(raw ?? '/', 'http://dashboard').pathname;
  } catch {
    return undefined;
  }
}

function notFound(res: ServerResponse, headers: Record<string, string>): void {
  res.writeHead(404, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
}

function sendJson(req: IncomingMessage, res: ServerResponse, code: number, body: unknown, headers: Record<string, string>): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(code, {
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': String(data.length),
  });
  res.end(req.method === 'HEAD' ? undefined : data);
}
