// TaskHost runs one attempt of one task: the kind's `run(ctx)` with a context
// whose effects (checkpoints, progress, results, logs) go to the worker
// through TaskCallbacks. A host never trusts the kind: it bounds what comes
// back and can always stop it, by force if the kind does not return in time.
//
// Two hosts: inline (built-in kinds that are part of gaffer and honour their
// signal) and thread (every kind loaded from a module, and any kind that may
// block or leak: one worker thread per attempt, terminated on a forced stop).

import type { Json, TaskResource } from '#kinds/api.js';

export interface TaskStart {
  resource: TaskResource;
  spec: { [k: string]: Json };
  attempt: number;
  /** This attempt ran here before, until a fence (TaskContext.rerun). */
  rerun?: boolean;
  checkpointed: Json | undefined;
  /** For a shard of a sharded resource: which one, of how many. */
  shard?: { index: number; count: number };
}

/** What the task does to the outside world; the worker fences each against its ownership. */
export interface TaskCallbacks {
  /** Resolves once durable; rejects (the kind sees the rejection) if this attempt no longer owns the resource. */
  checkpoint(state: Json): Promise<void>;
  progress(value: Json): void;
  /** id is the item's stable id (the kind's, or a hash of the item's JSON). Resolves once stored. */
  emit(item: Json, id: string): Promise<void>;
  log(level: 'debug' | 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string): void;
  /** A shard's queues (shard-io.ts); absent for a resource that is not sharded. */
  send?(index: number, item: Json, id: string): Promise<void>;
  /** The inbox's next item, with a ref to ack it by; undefined once the attempt has ended. */
  next?(): Promise<{ ref: number; item: Json; redelivered: boolean } | undefined>;
  ack?(ref: number): Promise<void>;
  /** Takes (+1) or gives back (-1) a busy mark (ctx.busy). */
  busy?(delta: 1 | -1): void;
  /** The resource's store (ctx.store), fenced like emit; absent on a worker without one, where ctx.store rejects. */
  store?: StoreCallbacks;
}

/** ctx.store's calls, with the key checked and the value copied (context.ts). */
export interface StoreCallbacks {
  get(key: string): Promise<Json | undefined>;
  /** Reads a key of another shard of the same resource (ctx.store.getShard); absent for a resource that is not sharded. */
  getShard?(index: number, key: string): Promise<Json | undefined>;
  put(key: string, value: Json): Promise<void>;
  delete(key: string): Promise<void>;
}

/** How an attempt ended. */
export type TaskEnd =
  /** run resolved: the resource is complete. `result` is undefined when run returned nothing. */
  | { kind: 'completed'; result: Json | undefined }
  /** run threw, rejected, returned something that is not JSON or too large, or the host lost it (crash, out of memory). */
  | { kind: 'failed'; error: string }
  /** stopped on request; forced when the kind did not return within the grace and was terminated. */
  | { kind: 'stopped'; forced: boolean };

export interface RunningTask {
  /** Settles once the attempt has certainly ended (never rejects). */
  readonly done: Promise<TaskEnd>;
  /**
   * stop aborts the kind's signal, waits up to graceMs for run to return, and
   * then ends it by force. Resolves once the attempt has certainly ended:
   * after this, none of its code runs any more (for the thread host: the
   * thread is gone). Idempotent. If run had already ended on its own, that
   * end is returned; once stop has been called, any later end is 'stopped'
   * (a kind that returns after its signal aborted was stopped, not done).
   */
  stop(graceMs: number): Promise<TaskEnd>;
}

export interface TaskHost {
  start(start: TaskStart, cb: TaskCallbacks): RunningTask;
}
