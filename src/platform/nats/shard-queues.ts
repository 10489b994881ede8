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
  type Consumer, type JsMsg, type NatsConnection, type StreamConfig, type StreamInfo,
} from 'nats';
import { ContentType, json } from '#protocol/codec.js';
import { Header, SHARDS_STREAM, subjects } from '#protocol/subjects.js';
import { UnavailableError } from '#protocol/errors.js';
import { withRetry } from '../retry.js';
import { addStream, isStreamNotFound, jsError, resultMsgId } from './results.js';

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
 * QueueCounter counts the items stored for each of a resource's shards
 * (delivered but unacknowledged ones included), at one instant: the leader's
 * completion check, which a count of zero too many would end early. So a
 * count is refused (UnavailableError: ask again) when it cannot be trusted:
 * - a clustered stream without a leader, or with a replica not current
 *   (for up to NOT_CURRENT_GRACE_MS: nats-server 2.9.10 can leave a replica
 *   behind for good after a node restarts, and then the leader's count is
 *   the best there is; a crawl does not rest on it alone, its receipts
 *   cover what a count misses);
 * - a stream whose last sequence went back since the last count: nats-server
 *   2.9.10 can reset a clustered stream's state when its nodes restart, and
 *   read it empty meanwhile. The lower sequence is taken as the new base, so
 *   a stream an operator recreated is refused once, not forever.
 */
/** How long counts are refused while a replica of the stream is not current. */
export const NOT_CURRENT_GRACE_MS = 30_000;

export class QueueCounter {
  private lastSeq = 0;
  /** Since when a replica has been seen not current (Date.now()), while it is. */
  private behindSince: number | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly graceMs = NOT_CURRENT_GRACE_MS,
    /** Told when the stream is not there (nats-server 2.9.10 can lose a clustered stream whose nodes restart): a master creates it again. */
    private readonly missing?: () => void,
  ) {}

  async count(resourceId: string, count: number): Promise<number[]> {
    const jsm = await this.nc.jetstreamManager({ checkAPI: false, timeout: SHARD_QUEUE_DEFAULTS.timeoutMs });
    let info: StreamInfo;
    try {
      info = await jsm.streams.info(SHARDS_STREAM, { subjects_filter: subjects.shardQueues(resourceId) });
    } catch (err) {
      if (isStreamNotFound(err)) this.missing?.();
      throw jsError(`counting the queues of ${resourceId}`, err);
    }
    const c = info.cluster;
    if (c && !c.leader) throw new UnavailableError(`stream ${SHARDS_STREAM} has no leader; counting again later`);
    const behind = (c?.replicas ?? []).some((r) => !r.current);
    this.behindSince = behind ? (this.behindSince ?? Date.now()) : undefined;
    if (this.behindSince !== undefined && Date.now() - this.behindSince < this.graceMs) {
      throw new UnavailableError(`stream ${SHARDS_STREAM} has a replica that is not current; counting again later`);
    }
    const seen = this.lastSeq;
    this.lastSeq = info.state.last_seq;
    if (info.state.last_seq < seen) {
      throw new UnavailableError(`stream ${SHARDS_STREAM} went back from sequence ${seen} to ${info.state.last_seq} (its state was reset); counting again later`);
    }
    const by = (info.state.subjects ?? {}) as Record<string, number>;
    return Array.from({ length: count }, (_, i) => by[subjects.shardQueue(resourceId, i)] ?? 0);
  }
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
/**
 * How long an inbox's pulls may bring nothing while its subject holds items
 * that nobody has been delivered before the consumer is taken for broken:
 * longer than an ack wait plus a pull, so that items out with a holder that
 * died have come back by then.
 */
export const STUCK_AFTER_MS = SHARD_QUEUE_DEFAULTS.ackWaitMs + 2 * FETCH_MS;

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
    h.set(Header.resourceId, resourceId);
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
  async inbox(resourceId: string, index: number, opts: { ackWaitMs?: number; stuckAfterMs?: number } = {}): Promise<ShardInbox> {
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
    const subject = subjects.shardQueue(resourceId, index);
    // nats-server 2.9.10 can reset a clustered stream's state when its nodes
    // restart, and leave a consumer that believes it delivered past the
    // stream's last sequence (or one that delivers nothing), or a stream that
    // holds again items the consumer had acknowledged (below its ack floor):
    // items then stay stored, counted by the completion check and never
    // delivered. So, with pulls bringing nothing: items stored and none out
    // unacknowledged, or more stored than the consumer has left to deliver
    // and out (read twice around the stream's count, with no delivery or
    // ack between, so an item stored or acknowledged meanwhile is not taken
    // for one): the consumer is deleted, and the shard opens a new one that
    // delivers what is stored from the start. An item delivered again so is
    // one the kind has handled or holds (at least once, as after a move).
    const repair = async (): Promise<boolean> => {
      const before = await jsm.consumers.info(SHARDS_STREAM, name);
      const st = await jsm.streams.info(SHARDS_STREAM, { subjects_filter: subject });
      const c = await jsm.consumers.info(SHARDS_STREAM, name);
      const stored = ((st.state.subjects ?? {}) as Record<string, number>)[subject] ?? 0;
      const still = before.delivered.stream_seq === c.delivered.stream_seq && before.ack_floor.stream_seq === c.ack_floor.stream_seq;
      if (stored === 0 || !still) return false;
      if (c.num_ack_pending > 0 && stored <= c.num_pending + c.num_ack_pending) return false;
      await jsm.consumers.delete(SHARDS_STREAM, name);
      return true;
    };
    return new ShardInbox(await this.js.consumers.get(SHARDS_STREAM, name), repair, opts.stuckAfterMs, resourceId);
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

  /**
   * @param repair checks whether the consumer is broken (items stored that it
   *   does not deliver) and if so deletes it; true when it did. Asked once
   *   pulls have brought nothing for STUCK_AFTER_MS, and again as often.
   */
  constructor(
    private readonly consumer: Consumer,
    private readonly repair: () => Promise<boolean>,
    private readonly stuckAfterMs = STUCK_AFTER_MS,
    /** The resource whose items these are: one sent for another is dropped (term), as nats-server 2.9.10 after a reset has delivered one. */
    private readonly resourceId?: string,
  ) {
    void this.pull();
  }

  private async pull(): Promise<void> {
    let quietSince = Date.now();
    while (!this.closed) {
      if (this.queue.length >= INBOX_BATCH) {
        await new Promise<void>((resolve) => (this.room = resolve));
        continue;
      }
      try {
        const batch = await this.consumer.fetch({ max_messages: INBOX_BATCH - this.queue.length, expires: FETCH_MS });
        let got = 0;
        for await (const m of batch) {
          got++;
          if (this.foreign(m)) m.term();
          else this.offer(m);
        }
        if (got > 0) quietSince = Date.now();
        else if (Date.now() - quietSince >= this.stuckAfterMs) {
          quietSince = Date.now();
          // Repaired: the pulls end, and the shard opens its inbox again on a new consumer.
          if (!this.closed && (await this.repair())) throw new Error('consumer repaired');
        }
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

  /** foreign: the item says it was sent for another resource (an item without the header, from an older worker, is taken). */
  private foreign(m: JsMsg): boolean {
    const from = m.headers?.get(Header.resourceId);
    return this.resourceId !== undefined && !!from && from !== this.resourceId;
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
