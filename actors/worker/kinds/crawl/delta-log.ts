// DeltaLog keeps an append-only log durable in a shard's task store
// (ctx.store, a JetStream KV bucket) as numbered deltas, keys `<prefix>.<n>`,
// each holding what was added since the previous one. A delta is written
// every FLUSH_MS, or as soon as it holds maxCost (which keeps each value
// under the store's 64 KiB limit).
//
// add() hands out a ticket, the number of the delta the values will be in,
// and durable(ticket) resolves once that delta is stored. Deltas are written
// one at a time, in order, so "delta n stored" means every delta before it
// is too.
//
// loadDeltas() reads `<prefix>.0`, `.1`, … back. The etcd checkpoint keeps
// only the count written so far, a lower bound: reading goes on past it
// until a whole batch of keys is missing. The store is bounded and drops its
// oldest writes when full, so keys missing below the last one found are
// counted as lost, never guessed at.

import type { Clock, Timer } from '#platform/clock.js';
import type { Json, TaskStore } from '#kinds/api.js';

export const FLUSH_MS = 250;
const LOAD_BATCH = 16;

export class DeltaLogError extends Error {
  override name = 'DeltaLogError';
}

export interface DeltaFormat<T> {
  /** The keys' prefix: delta n is `<prefix>.<n>`. */
  prefix: string;
  /** What a value costs against maxCost. */
  cost(v: T): number;
  /** A delta is sealed once it costs this much. */
  maxCost: number;
  encode(values: readonly T[]): Json;
}

export interface Loaded {
  /** The number of the next delta to write: one past the last found (or the checkpoint's count, if larger). */
  next: number;
  /** Deltas found. */
  found: number;
  /** Deltas missing below `next`: dropped by the bounded store. */
  lost: number;
}

/** loadDeltas hands every stored delta of `prefix` to `each`, in order; `written` is the checkpoint's count (a lower bound). */
export async function loadDeltas(get: (key: string) => Promise<Json | undefined>, prefix: string, written: number, each: (v: Json) => void): Promise<Loaded> {
  let last = -1;
  let found = 0;
  for (let from = 0; ; from += LOAD_BATCH) {
    const vals = await Promise.all(Array.from({ length: LOAD_BATCH }, (_, i) => get(`${prefix}.${from + i}`)));
    let any = false;
    vals.forEach((v, i) => {
      if (v === undefined) return;
      each(v);
      found++;
      any = true;
      last = from + i;
    });
    if (!any && from + LOAD_BATCH >= written) break;
  }
  const next = Math.max(last + 1, written);
  return { next, found, lost: next - found };
}

export class DeltaLog<T> {
  /** The delta being filled. */
  private pending: T[] = [];
  private pendingCost = 0;
  /** Deltas sealed and waiting to be written, oldest first, with their numbers. */
  private readonly sealed: Array<{ n: number; values: T[] }> = [];
  /** The number the pending delta will get. */
  private nextN: number;
  /** Deltas below this number are stored. */
  private storedN: number;
  private writing = false;
  private failed: Error | undefined;
  private readonly waiters: Array<{ ticket: number; resolve: () => void; reject: (e: Error) => void }> = [];
  private readonly timer: Timer;

  constructor(
    private readonly store: Pick<TaskStore, 'put'>,
    clock: Clock,
    private readonly format: DeltaFormat<T>,
    start: number,
  ) {
    this.nextN = start;
    this.storedN = start;
    this.timer = clock.every(FLUSH_MS, () => this.flush());
  }

  /** written is how many deltas are stored (what the etcd checkpoint keeps). */
  get written(): number {
    return this.storedN;
  }

  /**
   * filling is a ticket that is durable once everything added so far is:
   * the delta being filled, or with nothing in it, the last one sealed (a
   * ticket for an empty delta would wait for a write that never comes).
   */
  get filling(): number {
    return this.pending.length > 0 ? this.nextN : this.nextN - 1;
  }

  /** add logs values (in one delta) and returns their ticket. */
  add(values: readonly T[]): number {
    for (const v of values) {
      this.pending.push(v);
      this.pendingCost += this.format.cost(v);
    }
    const ticket = this.nextN;
    if (this.pendingCost >= this.format.maxCost) this.seal();
    return ticket;
  }

  /** durable resolves once the delta of `ticket` is stored (at once for a ticket below start, or -1). */
  durable(ticket: number): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (ticket < this.storedN) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ ticket, resolve, reject }));
  }

  /** flush seals what was added and writes every sealed delta in order. */
  flush(): void {
    if (this.pending.length > 0) this.seal();
    void this.write();
  }

  close(): void {
    this.timer.cancel();
    this.fail(new DeltaLogError(`${this.format.prefix} log closed`));
  }

  private seal(): void {
    this.sealed.push({ n: this.nextN++, values: this.pending });
    this.pending = [];
    this.pendingCost = 0;
    void this.write();
  }

  private async write(): Promise<void> {
    if (this.writing || this.failed) return;
    this.writing = true;
    try {
      while (this.sealed.length > 0 && !this.failed) {
        const d = this.sealed[0]!;
        await this.store.put(`${this.format.prefix}.${d.n}`, this.format.encode(d.values));
        this.sealed.shift();
        this.storedN = d.n + 1;
        for (let i = this.waiters.length - 1; i >= 0; i--) {
          const w = this.waiters[i]!;
          if (w.ticket < this.storedN) {
            this.waiters.splice(i, 1);
            w.resolve();
          }
        }
      }
    } catch (err) {
      this.fail(new DeltaLogError(`${this.format.prefix} delta not stored: ${(err as Error).message}`, { cause: err }));
    } finally {
      this.writing = false;
    }
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const w of this.waiters.splice(0)) w.reject(this.failed);
  }
}
