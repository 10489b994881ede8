// SeenLog keeps a sharded crawl's seen-set durable outside etcd: as
// append-only deltas in the shard's task store (ctx.store, a JetStream KV
// bucket), key `seen.<n>`, each the base64 of the 8-byte hashes added since
// the previous delta. A delta is written every FLUSH_MS, or as soon as it
// holds MAX_DELTA_HASHES (which keeps each value under the 64 KiB limit).
//
// add() hands out a ticket, the number of the delta the hash will be in, and
// durable(ticket) resolves once that delta is stored: a crawl acknowledges a
// queue item only after its URL's hash is durable, so no URL whose item left
// the queue is ever forgotten by the next owner of the shard. Deltas are
// written one at a time, in order, so "delta n stored" means every delta
// before it is too.
//
// load() reads seen.0, seen.1, … back into a SeenSet. The etcd checkpoint
// keeps only the count written so far, a lower bound: reading goes on past
// it until a whole batch of keys is missing. The store is bounded and drops
// its oldest writes when full, so keys missing below the last one found
// are counted as lost (their URLs may be fetched again), never guessed at.

import type { Clock, Timer } from '#platform/clock.js';
import type { TaskStore } from '#kinds/api.js';
import { SeenSet } from './seen-set.js';

export const FLUSH_MS = 250;
/** 6,000 hashes: 48,000 bytes, 64,000 characters of base64, under the store's 64 KiB per value. */
export const MAX_DELTA_HASHES = 6000;
const LOAD_BATCH = 16;

export const deltaKey = (n: number): string => `seen.${n}`;

export class SeenLogError extends Error {
  override name = 'SeenLogError';
}

/** encodeDelta packs [hi, lo, hi, lo, …] (unsigned 32-bit halves) as base64 of big-endian 8-byte hashes. */
export function encodeDelta(flat: ArrayLike<number>): string {
  if (flat.length % 2 !== 0) throw new SeenLogError('seen delta: odd number of halves');
  const b = Buffer.allocUnsafe(flat.length * 4);
  for (let i = 0; i < flat.length; i++) b.writeUInt32BE(flat[i]! >>> 0, i * 4);
  return b.toString('base64');
}

/** decodeDelta reverses encodeDelta; throws SeenLogError for anything it did not write. */
export function decodeDelta(v: unknown): Uint32Array {
  if (typeof v !== 'string') throw new SeenLogError('seen delta: not a string');
  const b = Buffer.from(v, 'base64');
  if (b.length % 8 !== 0 || b.toString('base64') !== v) throw new SeenLogError('seen delta: not base64 of 8-byte hashes');
  const out = new Uint32Array(b.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = b.readUInt32BE(i * 4);
  for (let i = 0; i < out.length; i += 2) if (out[i] === 0 && out[i + 1] === 0) throw new SeenLogError('seen delta: zero hash');
  return out;
}

export interface Loaded {
  /** The number of the next delta to write: one past the last found (or the checkpoint's count, if larger). */
  next: number;
  hashes: number;
  /** Deltas missing below `next`: dropped by the bounded store. */
  lost: number;
}

/** loadSeen reads every delta back into `into`; `written` is the checkpoint's count (a lower bound). */
export async function loadSeen(store: Pick<TaskStore, 'get'>, written: number, into: SeenSet): Promise<Loaded> {
  let last = -1;
  let hashes = 0;
  let present = 0;
  for (let from = 0; ; from += LOAD_BATCH) {
    const vals = await Promise.all(Array.from({ length: LOAD_BATCH }, (_, i) => store.get(deltaKey(from + i))));
    let any = false;
    vals.forEach((v, i) => {
      if (v === undefined) return;
      const flat = decodeDelta(v);
      for (let k = 0; k < flat.length; k += 2) into.addHash(flat[k]!, flat[k + 1]!);
      hashes += flat.length / 2;
      present++;
      any = true;
      last = from + i;
    });
    if (!any && from + LOAD_BATCH >= written) break;
  }
  const next = Math.max(last + 1, written);
  return { next, hashes, lost: next - present };
}

export class SeenLog {
  /** The delta being filled, as [hi, lo, …]. */
  private pending: number[] = [];
  /** Deltas sealed and waiting to be written, oldest first, with their numbers. */
  private readonly sealed: Array<{ n: number; flat: number[] }> = [];
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
    private readonly clock: Clock,
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

  /** add logs a new hash and returns its ticket. */
  add(hi: number, lo: number): number {
    this.pending.push(hi, lo);
    const ticket = this.nextN;
    if (this.pending.length >= MAX_DELTA_HASHES * 2) this.seal();
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
    this.fail(new SeenLogError('seen log closed'));
  }

  private seal(): void {
    this.sealed.push({ n: this.nextN++, flat: this.pending });
    this.pending = [];
    void this.write();
  }

  private async write(): Promise<void> {
    if (this.writing || this.failed) return;
    this.writing = true;
    try {
      while (this.sealed.length > 0 && !this.failed) {
        const d = this.sealed[0]!;
        await this.store.put(deltaKey(d.n), encodeDelta(d.flat));
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
      this.fail(new SeenLogError(`seen delta not stored: ${(err as Error).message}`, { cause: err }));
    } finally {
      this.writing = false;
    }
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const w of this.waiters.splice(0)) w.reject(this.failed);
  }
}
