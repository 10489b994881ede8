// The contract between the task runtime and a task kind. A kind module is an
// ES module whose default export maps kind names to `{ run(ctx) }`; this file
// is all a kind's author needs to read (see examples/ and the README).
//
// A kind is user code: the runtime treats everything it returns or throws as
// untrusted input, and bounds what it may send (checkpoints and results are
// JSON of at most MAX_STATE_BYTES).

import type { Json } from '#protocol/messages.js';

/** JSON values: what checkpoints, progress, results and emitted items may hold. */
export type { Json };
/** The largest checkpoint, result or emitted item, as JSON bytes. */
export { MAX_STATE_BYTES } from '#protocol/messages.js';

/** TaskLog is a pino-style logger: `log.info({ url }, 'fetched')` or `log.warn('slow')`. */
export interface TaskLog {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

export interface TaskResource {
  name: string;
  /** Unique per creation of the name: a deleted and re-added name gets a new id. */
  id: string;
}

export interface EmitOptions {
  /**
   * A stable id for this item, unique within the resource. An item emitted
   * again with the same id (say, after a resume from a checkpoint) is stored
   * once. Default: a hash of the item's JSON.
   */
  id?: string;
}

/** InboxItem is one item another shard (or this one) sent to this shard. */
export interface InboxItem {
  item: Json;
  /**
   * The item was delivered before (to an earlier attempt of this shard, or
   * given back as one stopped): the work it stood for may have been cut off
   * halfway. An item seen for the first time says false.
   */
  redelivered: boolean;
  /**
   * Removes the item from the queue for good, once every send made before
   * it is stored. Call it once the item is handled, its sends and emits
   * included: an item not acknowledged when the shard moves goes to the
   * next owner. Rejects if this worker no longer owns the shard.
   */
  ack(): Promise<void>;
}

/**
 * A durable key-value store scoped to the resource: what one attempt or run
 * puts, the next attempt or run of the same resource reads, on any worker (a
 * deleted and re-added name starts empty). Values are JSON of at most
 * MAX_STATE_BYTES; keys are dot-separated tokens of `A-Z a-z 0-9 _ = -`, up
 * to 200 characters. It is a cache, not a database: the store is bounded
 * and drops the oldest writes when full, so a missing key means "not
 * remembered". Each call is fenced like an emit: it rejects once this worker
 * no longer owns the attempt.
 */
export interface TaskStore {
  /** The value last put under `key`, or undefined. */
  get(key: string): Promise<Json | undefined>;
  /** Resolves once `value` is durable. */
  put(key: string, value: Json): Promise<void>;
  delete(key: string): Promise<void>;
  /**
   * The value last put under `key` by shard `index` of this resource (a
   * sharded resource only): each shard writes only its own keys, and reads
   * its siblings' this way. Rejects for a resource that is not sharded.
   */
  getShard(index: number, key: string): Promise<Json | undefined>;
}

export interface TaskContext {
  resource: TaskResource;
  spec: { [k: string]: Json };
  /**
   * Aborted when the task must stop (unassigned, moved, worker stopping).
   * Return promptly; a kind may call checkpoint() one last time first, so a
   * moved task resumes where it stopped. A task that ignores the signal is
   * stopped by force after the worker's stop grace.
   */
  signal: AbortSignal;
  log: TaskLog;
  /** 1 on the first start; counts every start of this resource, restarts and moves alike. */
  attempt: number;
  /**
   * This attempt ran before on this worker and is started again with the same
   * number: the worker's lease lapsed (a stall) and came back. Like an
   * attempt above 1, a kind should assume the run before it had effects.
   */
  rerun?: boolean;
  /** The last durable checkpoint, or undefined on a fresh start. */
  checkpointed: Json | undefined;
  /** Resolves once `state` is durable; rejects (CheckpointRefused) if this worker no longer owns the resource. */
  checkpoint(state: Json): Promise<void>;
  /** Best effort and throttled: the latest value wins. */
  progress(value: Json): void;
  /** Publishes one result; resolves once JetStream has stored it (or already had it). */
  emit(item: Json, opts?: EmitOptions): Promise<void>;
  /** Which shard of how many this is; { index: 0, count: 1 } for a resource without spec.shards. */
  shard: { index: number; count: number };
  /**
   * Stores one item on shard `index`'s queue (a sharded resource only) and
   * resolves once stored; an item sent again with the same id is stored
   * once. Once this shard has been idle it may send only while it holds an
   * unacknowledged item. Rejects if this worker no longer owns the shard.
   */
  send(index: number, item: Json, opts?: EmitOptions): Promise<void>;
  /**
   * This shard's items, in order. Awaiting it while holding no item is what
   * makes the shard idle: a sharded resource completes once every shard is
   * idle (or has returned) and no item is queued or held anywhere. It ends
   * when the task is stopped; it is empty for a resource without spec.shards.
   */
  inbox: AsyncIterable<InboxItem>;
  /**
   * Marks this shard busy until the returned function is called (a sharded
   * resource only; a no-op otherwise): while any mark is held the shard is
   * not idle, so its resource cannot complete, and it may send. For work of
   * the kind's own that no held item stands for, such as waiting until
   * every item it sent has been handled by its receiver.
   */
  busy(): () => void;
  /**
   * This resource's durable key-value store (JetStream KV), kept across
   * attempts and runs. Every gaffer worker gives one; it is optional in the
   * type so a context made by hand (a test's) may leave it out.
   */
  store?: TaskStore;
}

export interface TaskKind {
  /** Resolving completes the resource with the value as its result; throwing fails this attempt. */
  run(ctx: TaskContext): Promise<Json | void> | Json | void;
}

/** A task-kind module's default export. */
export type TaskKinds = Record<string, TaskKind>;
