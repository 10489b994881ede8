// Durable shard-to-shard queues on JetStream: one work-queue stream
// (GAFFER_SHARDS), one subject per shard (`shards.<resource id>.<index>`) and
// one durable pull consumer per shard on it (nats-server 2.9 takes one filter
// subject per consumer, and a work-queue stream one consumer per subject).
//
// Guarantees: an item is stored once per (resource id, item id) within the
// duplicate window (Nats-Msg-Id); it stays stored until acknowledged, so an
// item a shard holds when it moves or dies is delivered again to the next
// owner (at once when the holder naks it as it stops, else after ack_wait,
// which the holder extends with working() while it keeps the item); an
// acknowledged item is removed and never delivered again. Counting what is
// stored (queued) is what the leader's completion check asks of it.
// Non-guarantees: fencing is the caller's (the worker checks its lease before
// every send and ack); a publish buffered in a process that is paused and
// resumed can still be stored late, as with results.

import {
  AckPolicy, DeliverPolicy, DiscardPolicy, headers as natsHeaders, nanos, RetentionPolicy, StorageType,
  type Consumer, type JsMsg, type NatsConnection, type StreamConfig,
} from 'nats';
import { ContentType, json } from '#protocol/codec.js';
import { Header, SHARDS_STREAM, subjects } from '#protocol/subjects.js';
import { UnavailableError } from '#protocol/errors.js';
import { withRetry } from '../retry.js';
import { addStream, jsError, resultMsgId } from './results.js';

export const SHARD_QUEUE_DEFAULTS = {
  maxBytes: 1024 ** 3,
  /** A shard that resends after a resume within this window stores each item once. */
  duplicateWindowMs: 10 * 60_000,
  /** An item held this long without an ack or working() goes to the shard's next pull (its next owner). */
  ackWaitMs: 10_000,
  /** Most items one shard holds unacknowledged. */
  maxAckPending: 10_000,
  timeoutMs: 5000,
  /**
   * How long a send keeps trying while JetStream is unavailable (a restart of
   * the servers, a stream without a leader for a moment): as long as an emit.
   * Re-sending is safe, the item's id stores it once.
   */
  sendRetryMs: 30_000,
} as const;

export function shardsStreamConfig(opts: { replicas?: number } = {}): Partial<StreamConfig> & { name: string } {
  const o = SHARD_QUEUE_DEFAULTS;
  return {
    name: SHARDS_STREAM,
    subjects: [subjects.allShardQueues],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    discard: DiscardPolicy.New,
    max_bytes: o.maxBytes,
    duplicate_window: nanos(o.duplicateWindowMs),
    num_replicas: opts.replicas ?? 1,
  };
}

/** ensureShardsStream creates the stream, or brings an existing one to this configuration (idempotent, from any master). */
export async function ensureShardsStream(nc: NatsConnection, opts: { replicas?: number } = {}): Promise<void> {
  const jsm = await nc.jetstreamManager({ checkAPI: false, timeout: SHARD_QUEUE_DEFAULTS.timeoutMs });
  const cfg = shardsStreamConfig(opts);
  if (!(await addStream(jsm, cfg))) {
    // The name is in use (by another master's create, or an older configuration): update it.
    const { name: _n, storage: _s, retention: _r, ...changeable } = cfg;
    await jsm.streams.update(SHARDS_STREAM, changeable).catch((e: unknown) => {
      throw jsError(`updating stream ${SHARDS_STREAM}`, e);
    });
  }
}

/** consumerName is a shard's durable consumer: ids have no dots, so it is a valid name. */
export const consumerName = (resourceId: string, index: number): string => `${resourceId}_${index}`;

/**
 * countQueued counts the items stored for each of a resource's shards
 * (delivered but unacknowledged ones included), at one instant: the leader's
 * completion check.
 */
export async function countQueued(nc: NatsConnection, resourceId: string, count: number): Promise<number[]> {
  const jsm = await nc.jetstreamManager({ checkAPI: false, timeout: SHARD_QUEUE_DEFAULTS.timeoutMs });
  const info = await jsm.streams.info(SHARDS_STREAM, { subjects_filter: subjects.shardQueues(resourceId) });
  const by = (info.state.subjects ?? {}) as Record<string, number>;
  return Array.from({ length: count }, (_, i) => by[subjects.shardQueue(resourceId, i)] ?? 0);
}

/** dropQueues removes a deleted resource's items and consumers (best effort: what fails stays until the stream's bounds drop it). */
export async function dropQueues(nc: NatsConnection, resourceId: string, count: number): Promise<void> {
  const jsm = await nc.jetstreamManager({ checkAPI: false, timeout: SHARD_QUEUE_DEFAULTS.timeoutMs });
  await jsm.streams.purge(SHARDS_STREAM, { filter: subjects.shardQueues(resourceId) }).catch(() => undefined);
  for (let i = 0; i < count; i++) await jsm.consumers.delete(SHARDS_STREAM, consumerName(resourceId, i)).catch(() => undefined);
}

/** Most items a shard's inbox takes ahead of its kind. */
const INBOX_BATCH = 64;
/** How long one pull request waits for items (the client takes no less than 1 s). */
const FETCH_MS = 2000;

/** QueuedItem is one item as a shard receives it. */
export interface QueuedItem {
  item: unknown;
  msg: JsMsg;
}

/** ShardQueues sends items to shards and opens a shard's inbox. */
export class ShardQueues {
  private readonly js;

  constructor(private readonly nc: NatsConnection) {
    this.js = nc.jetstream({ timeout: SHARD_QUEUE_DEFAULTS.timeoutMs });
  }

  /** send stores one item on a shard's queue; `duplicate` when the window already held its id. */
  async send(resourceId: string, index: number, itemId: string, item: unknown): Promise<{ duplicate: boolean }> {
    const deadline = Date.now() + SHARD_QUEUE_DEFAULTS.sendRetryMs;
    return withRetry(() => this.sendOnce(resourceId, index, itemId, item), {
      initialMs: 100,
      maxMs: 1000,
      retryable: (err) => err instanceof UnavailableError && Date.now() < deadline,
    });
  }

  private async sendOnce(resourceId: string, index: number, itemId: string, item: unknown): Promise<{ duplicate: boolean }> {
    const h = natsHeaders();
    h.set(Header.contentType, ContentType.json);
    try {
      const ack = await this.js.publish(subjects.shardQueue(resourceId, index), json.encode(item), {
        msgID: resultMsgId(resourceId, itemId),
        headers: h,
        expect: { streamName: SHARDS_STREAM },
      });
      return { duplicate: ack.duplicate };
    } catch (err) {
      throw jsError(`sending to shard ${index}`, err);
    }
  }

  /** inbox opens (creating if needed) a shard's durable consumer. */
  async inbox(resourceId: string, index: number, opts: { ackWaitMs?: number } = {}): Promise<ShardInbox> {
    const jsm = await this.nc.jetstreamManager({ checkAPI: false, timeout: SHARD_QUEUE_DEFAULTS.timeoutMs });
    const name = consumerName(resourceId, index);
    const cfg = {
      durable_name: name,
      filter_subject: subjects.shardQueue(resourceId, index),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(opts.ackWaitMs ?? SHARD_QUEUE_DEFAULTS.ackWaitMs),
      max_ack_pending: SHARD_QUEUE_DEFAULTS.maxAckPending,
    };
    try {
      await jsm.consumers.add(SHARDS_STREAM, cfg);
    } catch (err) {
      // Exists with another ack wait (a worker configured otherwise): use it as it is.
      await jsm.consumers.info(SHARDS_STREAM, name).catch(() => {
        throw jsError(`opening the inbox of shard ${index}`, err);
      });
    }
    return new ShardInbox(await this.js.consumers.get(SHARDS_STREAM, name));
  }
}

/**
 * ShardInbox takes one shard's items ahead of its kind, up to INBOX_BATCH,
 * with one pull request (fetch) at a time. Items waiting here are delivered
 * but not acknowledged, so they stay stored (what the completion count
 * sees), are kept alive with working() like held ones, and are handed back
 * (nak) when the attempt ends cleanly. A pull is never cut short: closing
 * lets the one in flight run out (at most FETCH_MS) and naks what it still
 * brings, since an item the server sent to a pull nobody reads would wait
 * out ack_wait before its next owner gets it.
 */
export class ShardInbox {
  private readonly queue: JsMsg[] = [];
  private waiter: ((m: JsMsg | undefined) => void) | undefined;
  private room: (() => void) | undefined;
  private closed = false;
  private release = false;
  /** The pulls failed (consumer deleted, connection closed): the caller opens the inbox again. */
  ended = false;

  constructor(private readonly consumer: Consumer) {
    void this.pull();
  }

  private async pull(): Promise<void> {
    while (!this.closed) {
      if (this.queue.length >= INBOX_BATCH) {
        await new Promise<void>((resolve) => (this.room = resolve));
        continue;
      }
      try {
        const batch = await this.consumer.fetch({ max_messages: INBOX_BATCH - this.queue.length, expires: FETCH_MS });
        for await (const m of batch) this.offer(m);
      } catch {
        this.ended = true;
        break;
      }
    }
    this.wake(undefined);
  }

  /** next is the next item, waiting up to expiresMs; undefined if none came. */
  async next(expiresMs: number): Promise<QueuedItem | undefined> {
    const m = this.queue.shift() ?? (this.ended || this.closed ? undefined : await this.wait(expiresMs));
    this.room?.();
    this.room = undefined;
    if (!m) return undefined;
    let item: unknown;
    try {
      item = json.decode(m.data);
    } catch {
      item = null;
    }
    return { item, msg: m };
  }

  /** keep pushes back the ack deadline of every item waiting here. */
  keep(): void {
    for (const m of this.queue) m.working();
  }

  /** close stops pulling; what waits here, or still arrives, goes back at once when `release`, else after ack_wait. */
  close(release: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.release = release;
    if (release) for (const m of this.queue.splice(0)) m.nak();
    this.room?.();
    this.wake(undefined);
  }

  private offer(m: JsMsg): void {
    if (this.closed) {
      if (this.release) m.nak();
      return;
    }
    if (this.waiter) this.wake(m);
    else this.queue.push(m);
  }

  private wait(ms: number): Promise<JsMsg | undefined> {
    return new Promise((resolve) => {
      const t = setTimeout(() => this.wake(undefined), ms);
      this.waiter = (m) => {
        clearTimeout(t);
        resolve(m);
      };
    });
  }

  private wake(m: JsMsg | undefined): void {
    const w = this.waiter;
    this.waiter = undefined;
    if (w) w(m);
    else if (m) this.queue.push(m);
  }
}
