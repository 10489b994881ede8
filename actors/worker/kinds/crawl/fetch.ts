// One page fetch over undici. Redirects are followed here, by hand, rather
// than by undici, because every hop is a new URL the crawl must vet (robots,
// sameHost, include/exclude, already seen) and must rate-limit on its host.
//
// The timeout runs per request and starts once the politeness slot is held,
// so waiting for our own rate limit never counts as the site being slow.

import { Agent, type Dispatcher } from 'undici';
import { canonicalize } from './frontier.js';
import type { Politeness, Release } from './politeness.js';

export const USER_AGENT = 'gaffer-crawler/0.1 (+https://github.com/gaffer)';
/** Bodies beyond this are cut: enough for any real page's title and links, and a bound on memory. */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
export const MAX_REDIRECTS = 10;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export class FetchError extends Error {
  override name = 'FetchError';
  /** Set when the host failed to answer (network error or timeout), as opposed to our own limits. */
  host?: string;
  /** The URL whose request failed (a redirect hop's, in a chain). */
  url?: string;

  constructor(message: string, opts?: { cause?: unknown; host?: string; url?: string }) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause });
    if (opts?.host !== undefined) this.host = opts.host;
    if (opts?.url !== undefined) this.url = opts.url;
  }
}

export interface Fetched {
  url: string;
  status: number;
  contentType: string | null;
  location: string | null;
  retryAfter: string | null;
  /** Validators, for a conditional fetch next run (recrawl.ts). */
  etag: string | null;
  lastModified: string | null;
  /** Present when wanted (see get()'s `want`) and the status had a body. */
  body: Buffer | null;
}

export type PageOutcome =
  | { kind: 'page'; res: Fetched; hops: string[] }
  /** A redirect the crawl declined to follow: `target` was seen before or refused by `follow`. */
  | { kind: 'stopped'; hops: string[]; target: string; refused: boolean };

export interface FetcherOptions {
  politeness: Politeness;
  timeoutMs: number;
  /** Expected parallelism towards one origin, so keep-alive sockets are not the bottleneck. */
  connections: number;
}

const header = (h: Record<string, string | string[] | undefined>, name: string): string | null => {
  const v = h[name];
  return v === undefined ? null : Array.isArray(v) ? (v[0] ?? null) : v;
};

export const isHtml = (contentType: string | null): boolean =>
  contentType === null || /^\s*(text\/html|application\/xhtml\+xml)\b/i.test(contentType);

export class Fetcher {
  readonly agent: Dispatcher;
  private readonly politeness: Politeness;
  private readonly timeoutMs: number;

  constructor(opts: FetcherOptions) {
    this.politeness = opts.politeness;
    this.timeoutMs = opts.timeoutMs;
    this.agent = new Agent({
      connections: opts.connections,
      keepAliveTimeout: 10_000,
      // Backstops: the per-request timer below is the real deadline.
      headersTimeout: Math.min(opts.timeoutMs + 1000, 2 ** 31 - 1),
      bodyTimeout: Math.min(opts.timeoutMs + 1000, 2 ** 31 - 1),
    });
  }

  /**
   * get issues one GET for a canonical URL. `want(status, contentType)` says
   * whether to read the body; unwanted bodies are drained so the socket is
   * reused. Throws FetchError on network errors and timeouts, and the
   * signal's reason when `signal` aborts. `held` is a politeness slot the
   * frontier already took for this host; without it, get waits for one.
   */
  async get(
    url: string,
    signal: AbortSignal,
    want: (status: number, contentType: string | null) => boolean,
    held?: Release,
    extraHeaders: Record<string, string> = {},
  ): Promise<Fetched> {
    const u = new URL(url);
    let release: Release;
    if (held) {
      release = held;
      try {
        // A 429 from another request may have blocked the host since the slot was taken.
        await this.politeness.waitUnblocked(u.host, signal);
      } catch (err) {
        release();
        throw err;
      }
    } else {
      release = await this.politeness.acquire(u.host, signal);
    }
    const ctl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ctl.abort(new FetchError(`timed out after ${this.timeoutMs} ms`));
    }, this.timeoutMs);
    const onAbort = (): void => ctl.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const res = await this.agent.request({
        origin: u.origin,
        path: u.pathname + u.search,
        method: 'GET',
        headers: { ...extraHeaders, 'user-agent': USER_AGENT, accept: 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.5' },
        signal: ctl.signal,
      });
      release();
      const contentType = header(res.headers, 'content-type');
      const location = header(res.headers, 'location');
      const retryAfter = header(res.headers, 'retry-after');
      const etag = header(res.headers, 'etag');
      const lastModified = header(res.headers, 'last-modified');
      let body: Buffer | null = null;
      if (want(res.statusCode, contentType)) {
        body = await readCapped(res.body, MAX_BODY_BYTES);
      } else {
        // Draining (not destroying) keeps the keep-alive socket usable.
        await res.body.dump();
      }
      return { url, status: res.statusCode, contentType, location, retryAfter, etag, lastModified, body };
    } catch (err) {
      release();
      if (signal.aborted) throw signal.reason;
      if (timedOut) throw new FetchError(`GET ${url}: timed out after ${this.timeoutMs} ms`, { host: u.host, url });
      const e = err as NodeJS.ErrnoException;
      throw new FetchError(`GET ${url}: ${e.code ? `${e.code} ` : ''}${e.message}`, { cause: err, host: u.host, url });
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * page fetches `url`, following redirects while `follow(target)` agrees.
   * `follow` vets and claims a hop target (robots, filters, seen set); the
   * chain stops at the first one it refuses. `held` is the slot for the
   * first request (see get); `conditional` are headers for the first request
   * only (a redirect target is fetched in full).
   */
  async page(
    url: string,
    signal: AbortSignal,
    follow: (target: string) => Promise<'follow' | 'seen' | 'refused'>,
    held?: Release,
    conditional: Record<string, string> = {},
  ): Promise<PageOutcome> {
    const hops: string[] = [];
    let current = url;
    for (let i = 0; ; i++) {
      const res = await this.get(current, signal, (status, ct) => !REDIRECTS.has(status) && isHtml(ct), i === 0 ? held : undefined, i === 0 ? conditional : {});
      const target = REDIRECTS.has(res.status) && res.location !== null ? canonicalize(res.location, current) : null;
      if (target === null) return { kind: 'page', res, hops };
      if (i >= MAX_REDIRECTS) throw new FetchError(`GET ${url}: more than ${MAX_REDIRECTS} redirects`);
      hops.push(current);
      const verdict = await follow(target);
      if (verdict !== 'follow') return { kind: 'stopped', hops, target, refused: verdict === 'refused' };
      current = target;
    }
  }

  close(): Promise<void> {
    return this.agent.destroy();
  }
}

async function readCapped(body: AsyncIterable<Buffer> & { destroy(): unknown }, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const room = max - size;
    if (chunk.length >= room) {
      chunks.push(chunk.subarray(0, room));
      size = max;
      body.destroy();
      break;
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}
