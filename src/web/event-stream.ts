// EventStream fans the cluster's events out to browsers as server-sent
// events: one NATS subscription on events.> per dashboard, one `data:` line
// per event to every connected client, a heartbeat comment so proxies and
// browsers keep the connection open.
//
// A slow browser must not grow our memory: once more than maxBacklogBytes
// wait in a client's socket buffer, its events are dropped (counted) until
// the buffer drains; then it gets `event: resync` with the number dropped,
// and refetches the state. One that stays stalled past stallMs is cut off
// (EventSource reconnects by itself, and refetches on open).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NatsConnection, Subscription } from 'nats';
import { subjects } from '#protocol/subjects.js';

export interface EventStreamOptions {
  /** A comment line this often (default 15 s). */
  heartbeatMs?: number;
  /** Bytes a client may have waiting before its events are dropped (default 256 KiB). */
  maxBacklogBytes?: number;
  /** A client dropping events this long is disconnected (default 60 s). */
  stallMs?: number;
  /** Events larger than this are not forwarded (default 256 KiB). */
  maxEventBytes?: number;
  /** Sent in the `hello` event: the master serving this stream. */
  servedBy: string;
}

/** How long the browser waits before reconnecting (the SSE `retry:` field). */
const RETRY_MS = 2000;

class Client {
  /** Events dropped since the backlog filled; 0 while it keeps up. */
  dropped = 0;
  stalledSince = 0;

  constructor(readonly res: ServerResponse, private readonly maxBacklog: number) {}

  /** send writes one chunk, or drops it while the client is behind. */
  send(chunk: Buffer, now: number): void {
    if (this.dropped > 0) {
      this.dropped++;
      return;
    }
    // writableNeedDrain: a write was refused, so 'drain' comes once the browser reads again.
    if (this.res.writableNeedDrain && this.res.writableLength + chunk.length > this.maxBacklog) {
      this.dropped = 1;
      this.stalledSince = now;
      this.res.once('drain', () => this.resync());
      return;
    }
    this.res.write(chunk);
  }

  /** heartbeat keeps the connection open; a client that is behind gets none (its buffer is full anyway). */
  heartbeat(): void {
    if (this.dropped === 0) this.res.write(': heartbeat\n\n');
  }

  private resync(): void {
    if (this.res.writableEnded) return;
    const n = this.dropped;
    this.dropped = 0;
    this.res.write(`event: resync\ndata: ${JSON.stringify({ dropped: n })}\n\n`);
  }
}

export class EventStream {
  private readonly clients = new Set<Client>();
  private readonly sub: Subscription;
  private readonly timer: NodeJS.Timeout;
  private readonly heartbeatMs: number;
  private readonly maxBacklog: number;
  private readonly stallMs: number;
  private readonly maxEventBytes: number;
  private closed = false;

  constructor(nc: NatsConnection, private readonly opts: EventStreamOptions) {
    this.heartbeatMs = opts.heartbeatMs ?? 15_000;
    this.maxBacklog = opts.maxBacklogBytes ?? 256 * 1024;
    this.stallMs = opts.stallMs ?? 60_000;
    this.maxEventBytes = opts.maxEventBytes ?? 256 * 1024;
    this.sub = nc.subscribe(subjects.allEvents, {
      callback: (err, msg) => {
        if (!err) this.publish(msg.data);
      },
    });
    this.timer = setInterval(() => this.tick(), this.heartbeatMs);
    this.timer.unref();
  }

  get size(): number {
    return this.clients.size;
  }

  /** attach answers GET /api/events: it keeps the response open until the browser goes or we close. */
  attach(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): void {
    res.writeHead(200, {
      ...headers,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    if (req.method === 'HEAD' || this.closed) {
      res.end();
      return;
    }
    req.socket.setNoDelay(true);
    const c = new Client(res, this.maxBacklog);
    this.clients.add(c);
    res.write(`retry: ${RETRY_MS}\nevent: hello\ndata: ${JSON.stringify({ servedBy: this.opts.servedBy })}\n\n`);
    const gone = () => this.clients.delete(c);
    res.on('close', gone);
    res.on('error', gone);
  }

  /** publish forwards one event's JSON to every client; anything that is not a JSON object is skipped. */
  private publish(data: Uint8Array): void {
    if (this.clients.size === 0 || data.length > this.maxEventBytes) return;
    let text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return;
    // One event is one data line: re-serialize JSON that was sent pretty-printed.
    if (/[\r\n]/.test(text)) text = JSON.stringify(value);
    const chunk = Buffer.from(`data: ${text}\n\n`);
    const now = Date.now();
    for (const c of this.clients) c.send(chunk, now);
  }

  private tick(): void {
    const now = Date.now();
    for (const c of this.clients) {
      if (c.dropped > 0 && now - c.stalledSince > this.stallMs) {
        this.clients.delete(c);
        c.res.destroy();
      } else c.heartbeat();
    }
  }

  /** close ends every client's stream and the subscription. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.sub.unsubscribe();
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }
}
