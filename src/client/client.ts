// GafferClient is the typed client for the client-facing subjects. Every call
// carries one request id (Gaffer-Request-Id) across its attempts, so the
// leader answers a repeated write with its first outcome. That makes it safe
// to retry, within the call's deadline, on "no responders", NO_LEADER and
// timeouts (a leader failover in progress). Everything else surfaces as a
// typed GafferError at once.

import { randomUUID } from 'node:crypto';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { connectBus, requestError } from '#platform/nats/bus.js';
import { withRetry } from '#platform/retry.js';
import { DEFAULTS, type TlsFiles } from '#platform/config.js';
import { ContentType, decodeReply, encode } from '#protocol/codec.js';
import { ErrorCode, fromWire, GafferError, InternalError, NoRespondersError } from '#protocol/errors.js';
import { ClientSubject, Header, subjects } from '#protocol/subjects.js';
import type { ScheduleAction, ScheduleRequest, ScheduleResult } from '#protocol/schedule-ops.js';
import type { AddResult, DrainResult, DryRunResult, ExplainResult, ListResult, Resource, Spec, StatusResult, WorkerStatusResult } from '#protocol/messages.js';
import type { ApplyResult, PruneSelector } from '#protocol/apply.js';
import type { ListFilter } from '#protocol/list-query.js';

export interface ClientOptions {
  /** Total time one call may take, retries included. */
  timeoutMs?: number;
  encoding?: ContentType;
}

const RETRYABLE = new Set<string>([ErrorCode.NO_LEADER, ErrorCode.TIMEOUT]);
/** An attempt with less time than this left is not worth sending. */
const MIN_ATTEMPT_MS = 50;

export class GafferClient {
  private readonly timeoutMs: number;
  private readonly encoding: ContentType;

  constructor(readonly nc: NatsConnection, opts: ClientOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.encoding = opts.encoding ?? ContentType.json;
  }

  /**
   * connect opens a NATS connection for the client. With `user`, replies come
   * to that user's own inbox prefix (`_INBOX_<user>.`), the only one nats.conf
   * lets it read; `tls` names PEM files (`caFile` to trust a private CA,
   * `certFile` and `keyFile` for servers that verify clients).
   */
  static async connect(url: string, opts: ClientOptions & { user?: string; pass?: string; tls?: TlsFiles } = {}): Promise<GafferClient> {
    const nc = await connectBus({
      url,
      name: 'gaffer-client',
      user: opts.user,
      pass: opts.pass,
      ...(opts.tls ? { tls: opts.tls } : {}),
      connectTimeoutMs: 2000,
    });
    return new GafferClient(nc, opts);
  }

  async add(name: string, spec?: Spec): Promise<AddResult> {
    return this.call<AddResult>(ClientSubject.add, spec === undefined ? { name } : { name, spec });
  }
  async delete(name: string): Promise<Resource> {
    return (await this.call<{ resource: Resource }>(ClientSubject.delete, { name })).resource;
  }
  /** dryRun says where an add would place a resource, and why, writing nothing. */
  async dryRun(name: string, spec?: Spec): Promise<DryRunResult> {
    return this.call<DryRunResult>(ClientSubject.add, { name, ...(spec ? { spec } : {}), dryRun: true });
  }
  /** explain says why a resource is where it is, or why it is pending. */
  async explain(name: string): Promise<ExplainResult> {
    return this.call<ExplainResult>(ClientSubject.explain, { name });
  }
  async cordon(worker: string): Promise<void> {
    await this.call(ClientSubject.cordon, { worker });
  }
  async uncordon(worker: string): Promise<void> {
    await this.call(ClientSubject.uncordon, { worker });
  }
  /** drain cordons a worker and moves its resources away (each stops there before it starts elsewhere). */
  async drain(worker: string, deadlineMs?: number): Promise<DrainResult> {
    return this.call<DrainResult>(ClientSubject.drain, { worker, ...(deadlineMs ? { deadlineMs } : {}) });
  }
  /** restart runs a completed or failed resource again, from its checkpoint. */
  async restart(name: string): Promise<Resource> {
    return (await this.call<{ resource: Resource }>(ClientSubject.restart, { name })).resource;
  }
  /** schedule pauses, resumes, triggers or backfills a scheduled resource (times as epoch ms). */
  async schedule(action: ScheduleAction, req: ScheduleRequest): Promise<ScheduleResult> {
    const subject = { pause: ClientSubject.schedulePause, resume: ClientSubject.scheduleResume, trigger: ClientSubject.scheduleTrigger, backfill: ClientSubject.scheduleBackfill }[action];
    return this.call<ScheduleResult>(subject, req);
  }
  async get(name: string): Promise<Resource> {
    return (await this.call<{ resource: Resource }>(ClientSubject.get, { name })).resource;
  }
  /** list returns every resource (that passes `filter`), following pages. */
  async list(filter: ListFilter = {}): Promise<Resource[]> {
    const all: Resource[] = [];
    for (let after: string | undefined; ; ) {
      const page = await this.page(after, undefined, filter);
      all.push(...page.resources);
      if (!page.next) return all;
      after = page.next;
    }
  }

  /** page returns one page of resources in name order, after `after`, filtered by the leader. */
  async page(after?: string, limit?: number, filter: ListFilter = {}): Promise<ListResult> {
    return this.call<ListResult>(ClientSubject.list, { ...filter, ...(after ? { after } : {}), ...(limit ? { limit } : {}) });
  }

  /**
   * apply makes many resources match their specs in one request (at most
   * MAX_APPLY_ITEMS, within MAX_APPLY_BYTES): one result per item, in order.
   */
  async apply(resources: ReadonlyArray<{ name: string; spec?: Spec }>, opts: { prune?: PruneSelector; dryRun?: boolean } = {}): Promise<ApplyResult> {
    return this.call<ApplyResult>(ClientSubject.apply, { resources, ...(opts.prune ? { prune: opts.prune } : {}), ...(opts.dryRun ? { dryRun: true } : {}) });
  }
  async status(): Promise<StatusResult> {
    return this.call<StatusResult>(ClientSubject.status, {});
  }
  async workerStatus(workerId: string): Promise<WorkerStatusResult> {
    return this.call<WorkerStatusResult>(subjects.workerStatus(workerId), {});
  }

  /** call sends one request and unwraps `{ok:true,...}`, retrying only what is safe to retry. */
  async call<T>(subject: string, body: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    const id = randomUUID();
    // A request lost with a crashed leader gets no answer at all: try again
    // within the deadline (the same id makes that safe), but not before a
    // master holding it for want of a leader could have answered NO_LEADER.
    const perAttempt = Math.max(DEFAULTS.holdMs + 500, Math.floor(timeoutMs / 2));
    let last: unknown;
    return withRetry(
      async () => {
        const left = deadline - Date.now();
        // The backoff ate the time left: the last error says more than a 1 ms timeout would.
        if (left < MIN_ATTEMPT_MS && last !== undefined) throw last;
        try {
          return await this.once<T>(subject, body, Math.max(1, Math.min(left, perAttempt)), id);
        } catch (err) {
          last = err;
          throw err;
        }
      },
      {
        initialMs: 50,
        maxMs: 500,
        // Retry only while another attempt could still be answered in time.
        retryable: (err) =>
          (err instanceof NoRespondersError || (err instanceof GafferError && RETRYABLE.has(err.code))) && deadline - Date.now() > MIN_ATTEMPT_MS,
      },
    );
  }

  private async once<T>(subject: string, body: unknown, timeout: number, id: string): Promise<T> {
    const h = natsHeaders();
    h.set(Header.contentType, this.encoding);
    h.set(Header.requestId, id);
    let msg;
    try {
      msg = await this.nc.request(subject, encode(body, this.encoding), { timeout, headers: h });
    } catch (err) {
      throw requestError(subject, timeout, err);
    }
    const type = msg.headers?.get(Header.contentType)?.includes('msgpack') ? ContentType.msgpack : ContentType.json;
    let reply: { ok?: unknown; error?: unknown };
    try {
      reply = decodeReply(msg.data, type) as typeof reply;
    } catch (err) {
      throw new InternalError(`malformed reply on ${subject}`, { cause: err });
    }
    if (reply?.ok === true) return reply as T;
    throw fromWire(reply?.error);
  }

  async close(): Promise<void> {
    await this.nc.close();
  }
}
