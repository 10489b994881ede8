// Reporter carries task reports to the leader on task.report, batched (one
// request per worker per short window, so a thousand starts are one message)
// and retried until the leader answers each: accepted, or refused because
// this worker incarnation no longer runs that attempt (NotOwnerError). A
// report that reaches a new leader again is harmless: the leader folds them
// in idempotently (by attempt, and by seq for checkpoints). A batch the
// leader refuses as BAD_REQUEST is not retried as it was: its reports go one
// at a time, so the one at fault is refused alone and the rest still land.

import { headers as natsHeaders } from 'nats';
import { ContentType, encode, decodeReply } from '#protocol/codec.js';
import { Header, WorkerSubject } from '#protocol/subjects.js';
import { MAX_REPORTS, type ReportResult, type TaskReport } from '#protocol/messages.js';
import { BadRequestError, ErrorCode, fromWire, GafferError, NotOwnerError } from '#protocol/errors.js';
import { newRequestId } from '#protocol/request.js';
import type { Bus } from '#platform/ports.js';
import type { Clock, Timer } from '#platform/clock.js';
import type { Logger } from '#platform/log.js';

/** How long reports wait to be sent together. */
const BATCH_MS = 20;
/** A batch stays well under the masters' 256 KiB request limit. */
const BATCH_BYTES = 192 * 1024;
const REQUEST_TIMEOUT_MS = 5000;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2000;

interface Pending {
  report: TaskReport;
  epoch: string;
  bytes: number;
  resolve(): void;
  reject(err: Error): void;
}

export class Reporter {
  private queue: Pending[] = [];
  private timer: Timer | undefined;
  private backoff = RETRY_MIN_MS;
  private posting = false;
  private closed = false;
  /** How many of the queued reports go alone, after a batch of them was refused. */
  private isolate = 0;

  constructor(
    private readonly bus: Bus,
    private readonly clock: Clock,
    private readonly worker: string,
    private readonly log: Logger,
  ) {}

  /** send resolves once the leader accepted the report; rejects with NotOwnerError if refused. */
  send(report: TaskReport, epoch: string): Promise<void> {
    if (this.closed) return Promise.reject(new NotOwnerError('the worker is stopping'));
    return new Promise((resolve, reject) => {
      const bytes = 64 + JSON.stringify(report).length;
      this.queue.push({ report, epoch, bytes, resolve, reject });
      this.schedule(BATCH_MS);
    });
  }

  /** drop refuses every queued report about a name: the attempt it concerns is gone from this worker. */
  drop(name: string): void {
    const keep: Pending[] = [];
    for (const p of this.queue) {
      if (p.report.name === name) p.reject(new NotOwnerError(`${name} is no longer run here`));
      else keep.push(p);
    }
    this.queue = keep;
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    for (const p of this.queue.splice(0)) p.reject(new NotOwnerError('the worker is stopping'));
  }

  private schedule(ms: number): void {
    if (this.timer || this.closed) return;
    this.timer = this.clock.after(ms, () => {
      this.timer = undefined;
      void this.flush();
    });
  }

  /**
   * flush sends batch after batch, one request at a time, so the leader
   * hears an attempt's reports in the order they were made: a last
   * checkpoint before the stop that lets the next owner start.
   */
  private async flush(): Promise<void> {
    if (this.posting) return;
    this.posting = true;
    try {
      while (this.queue.length > 0 && !this.closed && !this.timer) await this.post(this.take());
    } finally {
      this.posting = false;
    }
  }

  /** take removes one batch: one epoch, at most MAX_REPORTS, about BATCH_BYTES. */
  private take(): Pending[] {
    if (this.isolate > 0) {
      this.isolate--;
      return [this.queue.shift()!];
    }
    const epoch = this.queue[0]!.epoch;
    const out: Pending[] = [];
    const rest: Pending[] = [];
    let bytes = 0;
    for (const p of this.queue) {
      if (p.epoch === epoch && out.length < MAX_REPORTS && (out.length === 0 || bytes + p.bytes <= BATCH_BYTES)) {
        out.push(p);
        bytes += p.bytes;
      } else rest.push(p);
    }
    this.queue = rest;
    return out;
  }

  private async post(batch: Pending[]): Promise<void> {
    const h = natsHeaders();
    h.set(Header.contentType, ContentType.msgpack);
    h.set(Header.requestId, newRequestId(this.worker));
    // A batch not answered in time is sent again: the leader need not plan this copy after that.
    h.set(Header.timeoutMs, String(REQUEST_TIMEOUT_MS));
    const body = { worker: this.worker, epoch: batch[0]!.epoch, reports: batch.map((p) => p.report) };
    let results: ReportResult['results'];
    try {
      let data: Uint8Array;
      try {
        data = encode(body, ContentType.msgpack);
      } catch (err) {
        throw new BadRequestError(`task reports could not be encoded: ${(err as Error).message}`);
      }
      const msg = await this.bus.request(WorkerSubject.report, data, { timeoutMs: REQUEST_TIMEOUT_MS, headers: h });
      const type = msg.headers?.get(Header.contentType)?.includes('msgpack') ? ContentType.msgpack : ContentType.json;
      const reply = decodeReply(msg.data, type) as { ok?: boolean; error?: unknown; results?: ReportResult['results'] };
      if (reply?.ok !== true) throw fromWire(reply?.error);
      results = Array.isArray(reply.results) ? reply.results : [];
    } catch (err) {
      if (err instanceof GafferError && err.code === ErrorCode.BAD_REQUEST) {
        this.log.warn({ err: err.message, reports: batch.length }, 'task reports refused as malformed');
        if (batch.length === 1) return batch[0]!.reject(err);
        this.queue.unshift(...batch);
        this.isolate = Math.max(this.isolate, batch.length);
        return;
      }
      // No leader, a timeout, etcd away: the leader may or may not have them; send again (idempotent).
      this.log.debug({ err: (err as Error).message, reports: batch.length }, 'task reports not answered; retrying');
      this.queue.unshift(...batch);
      const wait = this.backoff;
      this.backoff = Math.min(RETRY_MAX_MS, this.backoff * 2);
      this.schedule(wait);
      return;
    }
    this.backoff = RETRY_MIN_MS;
    batch.forEach((p, i) => {
      const r = results[i];
      if (r?.ok === true) return p.resolve();
      const err = r && !r.ok ? fromWire(r.error) : new GafferError('INTERNAL', 'the leader answered no result for a report');
      p.reject(err.code === 'NOT_OWNER' ? new NotOwnerError(err.message) : err);
    });
  }
}
