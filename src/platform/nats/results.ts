// Task results on JetStream: the stream that keeps them (GAFFER_RESULTS,
// subjects results.<resource name>), a publisher that stores each item once,
// and a reader of one resource's results in order.
//
// Guarantees: an item emitted again with the same (resourceId, itemId) within
// the stream's duplicate window is stored once (JetStream dedupes on
// Nats-Msg-Id). Results outlive their resource: nothing here deletes them;
// only the stream's bounds (bytes, optionally age) drop the oldest.
// Non-guarantees: a re-emit after the duplicate window is stored again, and
// any user allowed to publish on results.> can write any resource's subject.

import { createHash } from 'node:crypto';
import {
  consumerOpts, DiscardPolicy, ErrorCode as NatsErrorCode, headers as natsHeaders, nanos, RetentionPolicy, StorageType,
  type JetStreamManager, type JetStreamSubscription, type JsMsg, type NatsConnection, type StreamConfig, type StreamInfo,
} from 'nats';
import { ContentType } from '#protocol/codec.js';
import { BadRequestError, GafferError, InternalError, NoRespondersError, UnavailableError } from '#protocol/errors.js';
import { Header, RESULTS_STREAM, subjects } from '#protocol/subjects.js';
import { validateId, validateName } from '#protocol/validate.js';
import { withRetry } from '../retry.js';

/** JetStream API error codes (`err_code`) we act on; any API error with code 503 is "unavailable" too. */
const JsApiError = {
  streamNameInUse: 10058,
  streamNotFound: 10059,
  subjectsOverlap: 10065,
} as const;

/** An emit attempt with less time than this left is not worth sending. */
const MIN_EMIT_ATTEMPT_MS = 200;

/** How often a create that lost a race to another master's is tried again. */
const CREATE_ATTEMPTS = 5;

export const RESULTS_DEFAULTS = {
  /** Past this size the oldest results are dropped (discard old). */
  maxBytes: 1024 ** 3,
  /** 0: no age limit, results stay until maxBytes pushes them out. */
  maxAgeMs: 0,
  /** A resume from a checkpoint re-emits items; within this window they are stored once. */
  duplicateWindowMs: 10 * 60_000,
  replicas: 1,
  timeoutMs: 5000,
  /**
   * How long a worker's emit keeps trying (ResultsPublisher retryMs): longer
   * than a clustered stream takes to elect a new leader when its leader's
   * server dies (about 5 to 10 s with nats-server 2.9), so a task rides over
   * it instead of failing its attempt.
   */
  emitRetryMs: 30_000,
} as const;

export interface ResultsStreamOptions {
  maxBytes?: number;
  maxAgeMs?: number;
  duplicateWindowMs?: number;
  /** Copies kept by a clustered JetStream; a single server takes only 1. */
  replicas?: number;
  /** Per JetStream API request. */
  timeoutMs?: number;
}

/** resultsStreamConfig is the stream's whole configuration for these options. */
export function resultsStreamConfig(opts: ResultsStreamOptions = {}): Partial<StreamConfig> & { name: string } {
  const o = { ...RESULTS_DEFAULTS, ...opts };
  // The server refuses a duplicate window longer than the max age.
  const window = o.maxAgeMs > 0 ? Math.min(o.duplicateWindowMs, o.maxAgeMs) : o.duplicateWindowMs;
  return {
    name: RESULTS_STREAM,
    subjects: [subjects.allResults],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_bytes: o.maxBytes,
    max_age: nanos(o.maxAgeMs),
    duplicate_window: nanos(window),
    num_replicas: o.replicas,
  };
}

/**
 * ensureResultsStream creates the results stream, or brings an existing one to
 * this configuration, and returns its info. Idempotent and safe from several
 * masters at once: the server accepts a create that matches what exists (one
 * that lost a race is tried again), and concurrent updates to the same
 * configuration all succeed. It never deletes or purges anything. Each
 * JetStream request is bounded by timeoutMs; failures are typed (jsError).
 */
export async function ensureResultsStream(nc: NatsConnection, opts: ResultsStreamOptions = {}): Promise<StreamInfo> {
  const timeout = opts.timeoutMs ?? RESULTS_DEFAULTS.timeoutMs;
  const cfg = resultsStreamConfig(opts);
  const jsm = await nc.jetstreamManager({ checkAPI: false, timeout });
  const created = await addStream(jsm, cfg);
  const { name: _name, storage: _storage, retention: _retention, ...changeable } = cfg;
  try {
    if (!created) await jsm.streams.update(RESULTS_STREAM, changeable);
    // Read back: a create that raced another can be answered before the
    // stream is set up (a zero `created`, seen with nats-server 2.9.10).
    return await jsm.streams.info(RESULTS_STREAM);
  } catch (err) {
    throw jsError(`${created ? 'reading' : 'updating'} stream ${RESULTS_STREAM}`, err);
  }
}

/**
 * addStream creates a stream, or answers undefined when one of that name
 * exists (the caller updates it): what every master does at start, at once.
 */
export async function addStream(jsm: JetStreamManager, cfg: Partial<StreamConfig> & { name: string }): Promise<StreamInfo | undefined> {
  let attempts = 0;
  return withRetry(
    async () => {
      try {
        return await jsm.streams.add(cfg);
      } catch (err) {
        if (apiError(err)?.err_code === JsApiError.streamNameInUse) return undefined; // exists, configured otherwise
        throw err;
      }
    },
    {
      initialMs: 50,
      maxMs: 500,
      // A create racing another master's can see its subjects before its name
      // (seen with nats-server 2.9.10); tried again, it finds the stream. A
      // stream of another name on results.> keeps overlapping, and fails.
      retryable: (err) => apiError(err)?.err_code === JsApiError.subjectsOverlap && ++attempts < CREATE_ATTEMPTS,
    },
  ).catch((err: unknown) => {
    throw jsError(`creating stream ${cfg.name}`, err);
  });
}

/** Longest Nats-Msg-Id we send; longer ones (or ones with odd characters) are hashed. */
export const MAX_MSG_ID = 200;

/** resultMsgId is the dedupe key of one item: stable across re-emits, bounded, header-safe. */
export function resultMsgId(resourceId: string, itemId: string): string {
  const id = `${resourceId}:${itemId}`;
  if (id.length <= MAX_MSG_ID && /^[\x21-\x7e]+$/.test(id)) return id;
  return `${resourceId}:sha256:${createHash('sha256').update(itemId, 'utf8').digest('hex')}`;
}

export interface EmitResult {
  /** True when JetStream already had this item: nothing new was stored. */
  duplicate: boolean;
  /** The item's stream sequence (the first copy's, for a duplicate). */
  seq: number;
}

export interface PublisherOptions {
  /** Per publish attempt. */
  timeoutMs?: number;
  /**
   * Keep trying this long, all attempts included, while JetStream is
   * unavailable (no responders, a timeout, a 503): a clustered stream without
   * a leader for a moment, or a stream not created yet. The same Nats-Msg-Id
   * every time makes that safe. Default 0: one attempt.
   */
  retryMs?: number;
}

/** ResultsPublisher stores task results, each once. */
export class ResultsPublisher {
  private readonly js;

  constructor(nc: NatsConnection, private readonly opts: PublisherOptions = {}) {
    this.js = nc.jetstream();
  }

  /**
   * emit stores one item and resolves once JetStream acknowledged it. It
   * throws BadRequestError for an item that cannot be stored as JSON (or is
   * too large), NoRespondersError when no stream takes the subject (certainly
   * not stored), and UnavailableError otherwise (e.g. timeout: maybe stored;
   * emitting again with the same ids is safe). With retryMs it throws the
   * last of those only once that time is up.
   */
  async emit(resourceName: string, resourceId: string, itemId: string, item: unknown, run?: number): Promise<EmitResult> {
    const retryMs = this.opts.retryMs ?? 0;
    if (retryMs <= 0) return this.emitOnce(resourceName, resourceId, itemId, item, this.opts.timeoutMs ?? RESULTS_DEFAULTS.timeoutMs, run);
    const deadline = Date.now() + retryMs;
    const timeout = this.opts.timeoutMs ?? RESULTS_DEFAULTS.timeoutMs;
    return withRetry(() => this.emitOnce(resourceName, resourceId, itemId, item, Math.max(MIN_EMIT_ATTEMPT_MS, Math.min(timeout, deadline - Date.now())), run), {
      initialMs: 100,
      maxMs: 1000,
      // BadRequestError is an UnavailableError's sibling, not a kind of it: never retried.
      retryable: (err) => err instanceof UnavailableError && deadline - Date.now() > MIN_EMIT_ATTEMPT_MS,
    });
  }

  private async emitOnce(resourceName: string, resourceId: string, itemId: string, item: unknown, timeout: number, run?: number): Promise<EmitResult> {
    const subject = subjects.results(validateName(resourceName));
    validateId(resourceId, 'resource');
    if (typeof itemId !== 'string' || itemId.length === 0) throw new BadRequestError('item id must be a non-empty string');
    const data = encodeItem(item);
    const h = natsHeaders();
    h.set(Header.resourceId, resourceId);
    h.set(Header.contentType, ContentType.json);
    if (run !== undefined) h.set(Header.run, String(run));
    try {
      const ack = await this.js.publish(subject, data, {
        // Each run stores its own items: the same item again in the next run is a new result.
        msgID: resultMsgId(run !== undefined ? `${resourceId}.r${run}` : resourceId, itemId),
        headers: h,
        timeout,
        // Only our stream may claim this item; any other stream's ack would be a misconfiguration.
        expect: { streamName: RESULTS_STREAM },
      });
      return { duplicate: ack.duplicate, seq: ack.seq };
    } catch (err) {
      if (natsCode(err) === NatsErrorCode.MaxPayloadExceeded) throw new BadRequestError(`result for ${resourceName} is larger than the server's max_payload`, { cause: err });
      if (natsCode(err) === NatsErrorCode.NoResponders && !apiError(err)) {
        throw new NoRespondersError(`no JetStream stream takes ${subject}: is ${RESULTS_STREAM} created?`, { cause: err });
      }
      throw jsError(`storing a result on ${subject}`, err);
    }
  }
}

function encodeItem(item: unknown): Uint8Array {
  let text: string | undefined;
  try {
    text = JSON.stringify(item);
  } catch (cause) {
    throw new BadRequestError('result item is not JSON-encodable', { cause });
  }
  if (text === undefined) throw new BadRequestError('result item is not JSON-encodable');
  return new TextEncoder().encode(text);
}

/** One stored result, as readResults yields it (and `gaffer results --json` prints it). */
export interface ResultRecord {
  seq: number;
  /** When JetStream stored it, ISO 8601. */
  at: string;
  resourceId: string;
  /** The Nats-Msg-Id it was stored under: `<resourceId>:<itemId>`, or hashed. */
  id: string;
  /** The run of a scheduled resource that emitted it. */
  run?: number;
  item: unknown;
}

export interface ReadOptions {
  /** Keep reading new results until the signal aborts; otherwise end after the last stored one. */
  follow?: boolean;
  signal?: AbortSignal;
  /** First stream sequence to read; default the subject's first. */
  from?: number;
  /** Per JetStream API request. */
  timeoutMs?: number;
  /** Called once the consumer exists (in follow mode: new results will be seen). */
  onReady?: () => void;
  /** Called for a stored message that is not a JSON result; it is skipped. */
  onSkip?: (seq: number) => void;
  /** Only the results of this run of a scheduled resource. */
  run?: number;
}

/** What nats.js keeps on a push subscription: the consumer info of its create reply. */
type WithConsumerInfo = { info?: { last?: { num_pending?: number } } | null };

/**
 * readResults yields the results stored on exactly results.<name>, in order,
 * through an ordered consumer (one filter subject: JetStream 2.9 takes no
 * more). Aborting the signal ends it quietly; a closed connection or a
 * consumer that cannot be recreated throws UnavailableError.
 */
export async function* readResults(nc: NatsConnection, name: string, opts: ReadOptions = {}): AsyncGenerator<ResultRecord> {
  const subject = subjects.results(validateName(name));
  const timeout = opts.timeoutMs ?? RESULTS_DEFAULTS.timeoutMs;
  if (opts.signal?.aborted) return;
  let stored: number;
  try {
    const jsm = await nc.jetstreamManager({ checkAPI: false, timeout });
    const info = await jsm.streams.info(RESULTS_STREAM, { subjects_filter: subject });
    stored = info.state.subjects?.[subject] ?? 0;
  } catch (err) {
    throw jsError(`reading stream ${RESULTS_STREAM}`, err);
  }
  if (!opts.follow && stored === 0) return;

  const co = consumerOpts().orderedConsumer().bindStream(RESULTS_STREAM).filterSubject(subject);
  if (opts.from !== undefined) co.startSequence(opts.from);
  else co.deliverAll();
  let sub: JetStreamSubscription;
  try {
    sub = await nc.jetstream({ timeout }).subscribe(subject, co);
  } catch (err) {
    throw jsError(`reading ${subject}`, err);
  }
  const stop = () => sub.unsubscribe();
  opts.signal?.addEventListener('abort', stop, { once: true });
  if (opts.signal?.aborted) stop();
  try {
    opts.onReady?.();
    // The count at the consumer's creation: results dropped since the stream info was read are not coming.
    if (!opts.follow && (sub as WithConsumerInfo).info?.last?.num_pending === 0) return;
    for await (const m of sub) {
      const r = decodeResult(m);
      if (!r) opts.onSkip?.(m.seq);
      else if (opts.run === undefined || r.run === opts.run) yield r;
      if (!opts.follow && m.info.pending === 0) return;
    }
    if (!opts.signal?.aborted) throw new UnavailableError(`reading ${subject} ended early: the connection closed`);
  } catch (err) {
    if (err instanceof GafferError) throw err;
    throw jsError(`reading ${subject}`, err);
  } finally {
    opts.signal?.removeEventListener('abort', stop);
    sub.unsubscribe();
  }
}

const text = new TextDecoder('utf-8', { fatal: true });

/** decodeResult reads one stored message; undefined when it is not a JSON result. */
export function decodeResult(m: JsMsg): ResultRecord | undefined {
  let item: unknown;
  try {
    item = JSON.parse(text.decode(m.data));
  } catch {
    return undefined;
  }
  const run = Number(m.headers?.get(Header.run) || NaN);
  return {
    seq: m.seq,
    at: new Date(Math.floor(m.info.timestampNanos / 1e6)).toISOString(),
    resourceId: m.headers?.get(Header.resourceId) ?? '',
    id: m.headers?.get(Header.msgId) ?? '',
    ...(Number.isSafeInteger(run) && run > 0 ? { run } : {}),
    item,
  };
}

function natsCode(err: unknown): string | undefined {
  return (err as { code?: string } | undefined)?.code;
}

function apiError(err: unknown): { code?: number; err_code?: number } | undefined {
  return (err as { api_error?: { code?: number; err_code?: number } } | undefined)?.api_error;
}

const UNAVAILABLE_NATS = new Set<string>([
  NatsErrorCode.NoResponders, NatsErrorCode.Timeout, NatsErrorCode.ConnectionClosed, NatsErrorCode.ConnectionDraining, NatsErrorCode.Disconnect,
  // nats.js reports an ordered consumer it could not recreate (e.g. while disconnected) as a RequestError.
  NatsErrorCode.RequestError,
]);

/** isStreamNotFound: JetStream answered that the stream does not exist (deleted, or lost by the server). */
export function isStreamNotFound(err: unknown): boolean {
  return apiError(err)?.err_code === JsApiError.streamNotFound;
}

/** jsError maps a nats.js JetStream failure to our typed errors, by code. */
export function jsError(what: string, err: unknown): GafferError {
  if (err instanceof GafferError) return err;
  const message = `${what}: ${(err as Error)?.message ?? String(err)}`;
  const api = apiError(err);
  // 503: JetStream not enabled, or a clustered JetStream without a leader yet.
  if (api && (api.code === 503 || api.err_code === JsApiError.streamNotFound)) return new UnavailableError(message, { cause: err });
  if (!api && UNAVAILABLE_NATS.has(natsCode(err) ?? '')) {
    const hint = natsCode(err) === NatsErrorCode.NoResponders ? ' (is JetStream enabled for this account?)' : '';
    return new UnavailableError(`${message}${hint}`, { cause: err });
  }
  return new InternalError(message, { cause: err });
}
