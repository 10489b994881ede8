// The task store behind `ctx.store`: one JetStream KV bucket
// (TASK_STATE_BUCKET) for every resource, each resource's keys under its
// resource id, so a re-created name starts with an empty store and no stream
// is made per resource. Masters create the bucket; workers only read and
// write keys.
//
// The bucket keeps one value per key (history 1) and is bounded by bytes:
// past maxBytes the oldest writes are dropped (discard old), so a kind must
// treat a missing key as "not remembered", never as an error. Nothing here
// deletes a removed resource's keys; the bound is what reclaims them.
// Values are JSON, written and read whole.

import { DiscardPolicy, RetentionPolicy, StorageType, type KV, type NatsConnection, type StreamConfig } from 'nats';
import type { Json } from '#protocol/messages.js';
import { subjects, TASK_STATE_BUCKET } from '#protocol/subjects.js';
import { checkStoreKey } from '#protocol/task-state.js';
import { validateId } from '#protocol/validate.js';
import { UnavailableError } from '#protocol/errors.js';
import { withRetry } from '../retry.js';
import { addStream, jsError } from './results.js';

export const TASK_STATE_DEFAULTS = {
  maxBytes: 1024 ** 3,
  replicas: 1,
  timeoutMs: 5000,
  /** How long a write keeps trying while JetStream is unavailable (as emits do). */
  retryMs: 30_000,
} as const;

/** The bucket's stream, as nats.js names a KV bucket's stream. */
export const TASK_STATE_STREAM = `KV_${TASK_STATE_BUCKET}`;

export interface TaskStateOptions {
  maxBytes?: number;
  replicas?: number;
  timeoutMs?: number;
}

/** taskStateStreamConfig is the bucket's stream: a KV bucket (nats.js reads it as one) with discard old. */
export function taskStateStreamConfig(opts: TaskStateOptions = {}): Partial<StreamConfig> & { name: string } {
  const o = { ...TASK_STATE_DEFAULTS, ...opts };
  return {
    name: TASK_STATE_STREAM,
    subjects: [`$KV.${TASK_STATE_BUCKET}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_msgs_per_subject: 1,
    max_bytes: o.maxBytes,
    num_replicas: o.replicas,
    allow_rollup_hdrs: true,
    deny_delete: true,
    allow_direct: true,
  };
}

/** ensureTaskStateBucket creates the bucket or brings it to this configuration; idempotent, from any number of masters. */
export async function ensureTaskStateBucket(nc: NatsConnection, opts: TaskStateOptions = {}): Promise<void> {
  const jsm = await nc.jetstreamManager({ checkAPI: false, timeout: opts.timeoutMs ?? TASK_STATE_DEFAULTS.timeoutMs });
  const cfg = taskStateStreamConfig(opts);
  if (!(await addStream(jsm, cfg))) {
    // The name is in use (by another master's create, or an older configuration): update it.
    const { name: _n, storage: _s, retention: _r, ...changeable } = cfg;
    await jsm.streams.update(TASK_STATE_STREAM, changeable).catch((e: unknown) => {
      throw jsError(`updating stream ${TASK_STATE_STREAM}`, e);
    });
  }
}

export interface TaskStateStoreOptions {
  timeoutMs?: number;
  retryMs?: number;
}

/** TaskStateStore reads and writes resources' keys; the worker fences every call before it gets here. */
export class TaskStateStore {
  private bucket: Promise<KV> | undefined;

  constructor(private readonly nc: NatsConnection, private readonly opts: TaskStateStoreOptions = {}) {}

  private kv(): Promise<KV> {
    // Bound, not created: a worker never configures the bucket (masters do).
    // checkAPI off: a worker may not ask $JS.API.INFO (nats.conf), and binding needs nothing from the server.
    this.bucket ??= this.nc.jetstream({ timeout: this.timeout, checkAPI: false }).views.kv(TASK_STATE_BUCKET, { bindOnly: true, allow_direct: true, timeout: this.timeout });
    // A failed bind is tried again on the next call rather than kept.
    this.bucket.catch(() => (this.bucket = undefined));
    return this.bucket;
  }

  private get timeout(): number {
    return this.opts.timeoutMs ?? TASK_STATE_DEFAULTS.timeoutMs;
  }

  private key(resourceId: string, key: string): string {
    return subjects.taskStateKey(validateId(resourceId, 'resource'), checkStoreKey(key));
  }

  /**
   * get is the value stored under key, or undefined (never written, deleted,
   * or dropped by the bound). Retried as writes are: a sharded crawl reads its
   * seen-set back through it, and a read that failed on a moment's outage
   * would fail the shard.
   */
  async get(resourceId: string, key: string): Promise<Json | undefined> {
    const k = this.key(resourceId, key);
    const e = await this.retry(`reading ${k}`, async () => (await this.kv()).get(k));
    if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
    try {
      return JSON.parse(new TextDecoder().decode(e.value)) as Json;
    } catch {
      return undefined; // not written by us: as good as absent
    }
  }

  async put(resourceId: string, key: string, value: Json): Promise<void> {
    const k = this.key(resourceId, key);
    const data = new TextEncoder().encode(JSON.stringify(value));
    await this.retry(`writing ${k}`, async () => (await this.kv()).put(k, data));
  }

  async delete(resourceId: string, key: string): Promise<void> {
    const k = this.key(resourceId, key);
    await this.retry(`deleting ${k}`, async () => (await this.kv()).delete(k));
  }

  private async retry<T>(what: string, fn: () => Promise<T>, retryMs = this.opts.retryMs ?? 0): Promise<T> {
    const deadline = Date.now() + retryMs;
    return withRetry(
      async () => {
        try {
          return await fn();
        } catch (err) {
          throw jsError(what, err);
        }
      },
      { initialMs: 100, maxMs: 1000, retryable: (err) => err instanceof UnavailableError && Date.now() < deadline },
    );
  }
}
