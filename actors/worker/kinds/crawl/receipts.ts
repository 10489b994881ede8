// Receipts: the end-to-end check that every URL a shard sent was handled by
// the shard that owns it. JetStream storing a queue item is not enough:
// nats-server 2.9.10 can reset a clustered work-queue stream whose nodes
// restart and drop items it had already acknowledged. The owner's seen log
// (seen-log.ts) records each URL once it is finished, so a sender keeps every
// URL it sent pending until the URL shows up in its owner's log, reading the
// logs of the owners it waits on (ctx.store.getShard) once a second.
//
// While anything is pending the shard holds a busy mark (ctx.busy): it is
// not idle, so the resource cannot complete with a sent URL unhandled, and
// it may send. A URL still pending once its owner's log has not grown (by a
// URL not read from it before) for RESEND_MS is sent again under a new id (the queue's duplicate window would
// drop the old one), and again after twice as long, and so on up to
// MAX_RESEND_MS apart. The owner drops a copy of a URL it holds or has
// finished, logging a finished one again, which is the receipt.
//
// A send inside the queue's duplicate window of an earlier copy is not
// stored again, so its receipt may be in a delta read before the send: the
// hashes read within the last window (plus a minute) are kept, by the
// minute, and a send checks them first.

import type { Clock } from '#platform/clock.js';
import type { Json } from '#kinds/api.js';
import { decodeDelta } from './seen-log.js';
import { SeenSet } from './seen-set.js';

/** A pending URL whose owner's log has not grown (by a URL not read before) for this long is sent again. */
export const RESEND_MS = 20_000;
const MAX_RESEND_MS = 10 * 60_000;
const BUCKET_MS = 60_000;
/** Keys past a missing one looked at when an owner's log seems stuck (the bounded store drops its oldest writes). */
const GAP_PROBE = 16;

export interface ReceiptsDeps {
  clock: Clock;
  /** Shards in the resource. */
  count: number;
  /** Delta n of shard `owner`'s seen log; undefined until written. */
  read(owner: number, n: number): Promise<Json | undefined>;
  /** Sends a URL to its owner again, under an id its earlier sends did not use. */
  resend(owner: number, url: string, depth: number, tries: number): Promise<void>;
  /** Takes a busy mark (ctx.busy); calling what it returns gives the mark back. */
  busy(): () => void;
  /** How long the queue drops a send whose id it stored before (its duplicate window). */
  windowMs: number;
  /** RESEND_MS unless a test says otherwise. */
  resendMs?: number;
  /** Says what was sent again (a queue item lost is worth a line in the log). */
  warn?: (fields: Record<string, unknown>, msg: string) => void;
}

interface Pending {
  url: string;
  depth: number;
  /** When it was last sent (monotonic ms). */
  at: number;
  tries: number;
}

const keyOf = (hi: number, lo: number): string => `${hi}:${lo}`;

export class Receipts {
  private readonly pending: Array<Map<string, Pending>>;
  /** The next delta to read of each owner's log. */
  private readonly cursor: number[];
  /** When each owner's log last grew (or when we began waiting on it). */
  private readonly grewAt: number[];
  private readonly recent: Array<{ until: number; set: SeenSet }> = [];
  private total = 0;
  private release: (() => void) | undefined;
  private polling = false;
  private readonly resendMs: number;
  /** URLs sent again for want of a receipt. */
  resent = 0;

  constructor(private readonly d: ReceiptsDeps) {
    this.pending = Array.from({ length: d.count }, () => new Map());
    this.cursor = new Array<number>(d.count).fill(0);
    this.grewAt = new Array<number>(d.count).fill(0);
    this.resendMs = d.resendMs ?? RESEND_MS;
  }

  /** URLs sent and not yet handled by their owners. */
  get outstanding(): number {
    return this.total;
  }

  /** expect notes a URL sent to `owner`; called before the send, so the busy mark is taken while the sender still holds its item. */
  expect(owner: number, url: string, depth: number, hi: number, lo: number): void {
    if (this.recentlyHandled(hi, lo)) return;
    const m = this.pending[owner]!;
    const now = this.d.clock.now();
    const key = keyOf(hi, lo);
    const had = m.get(key);
    if (had) {
      had.at = now;
      return;
    }
    if (m.size === 0) this.grewAt[owner] = now;
    m.set(key, { url, depth, at: now, tries: 0 });
    this.total++;
    this.hold();
  }

  /** poll reads what is new in the logs of the owners waited on, then sends again what waited too long; never rejects. */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      for (let o = 0; o < this.d.count; o++) if (this.pending[o]!.size > 0) await this.readNew(o);
      await this.resendDue();
    } catch {
      // A read or send refused (JetStream restarting, the attempt ending): the next poll tries again.
    } finally {
      this.polling = false;
      this.hold();
    }
  }

  private async readNew(owner: number): Promise<void> {
    for (;;) {
      let v = await this.d.read(owner, this.cursor[owner]!);
      if (v === undefined && this.stuck(owner)) v = await this.skipGap(owner);
      if (v === undefined) return;
      this.handled(owner, decodeDelta(v));
      this.cursor[owner]!++;
    }
  }

  /** skipGap moves the cursor past keys the bounded store dropped, if a later one exists; returns it. */
  private async skipGap(owner: number): Promise<Json | undefined> {
    const from = this.cursor[owner]! + 1;
    const vals = await Promise.all(Array.from({ length: GAP_PROBE }, (_, i) => this.d.read(owner, from + i)));
    const i = vals.findIndex((v) => v !== undefined);
    if (i < 0) return undefined;
    this.cursor[owner] = from + i;
    return vals[i];
  }

  /**
   * handled takes one delta of an owner's log. The owner counts as working
   * (its log grew) only for a URL not read from it before: an owner that
   * only logs duplicates again is not working through a backlog, and what
   * waits on it is sent again.
   */
  private handled(owner: number, flat: Uint32Array): void {
    const m = this.pending[owner]!;
    let fresh = false;
    for (let k = 0; k < flat.length; k += 2) {
      const hi = flat[k]!;
      const lo = flat[k + 1]!;
      if (!this.recentlyHandled(hi, lo)) {
        fresh = true;
        this.bucket().addHash(hi, lo);
      }
      if (m.delete(keyOf(hi, lo))) this.total--;
    }
    if (fresh) this.grewAt[owner] = this.d.clock.now();
  }

  private stuck(owner: number): boolean {
    return this.d.clock.now() - this.grewAt[owner]! >= this.resendMs;
  }

  private async resendDue(): Promise<void> {
    const now = this.d.clock.now();
    const sends: Array<Promise<void>> = [];
    for (let o = 0; o < this.d.count; o++) {
      if (this.pending[o]!.size === 0 || !this.stuck(o)) continue;
      let n = 0;
      let first: Pending | undefined;
      for (const p of this.pending[o]!.values()) {
        if (now - p.at < Math.min(MAX_RESEND_MS, this.resendMs * 2 ** p.tries)) continue;
        p.tries++;
        p.at = now;
        this.resent++;
        n++;
        first ??= p;
        sends.push(this.d.resend(o, p.url, p.depth, p.tries));
      }
      if (first) this.d.warn?.({ owner: o, urls: n, url: first.url, tries: first.tries, waiting: this.pending[o]!.size, read: this.cursor[o] }, 'crawl: no receipt for URLs sent to a shard whose log stands still; sent again');
    }
    await Promise.all(sends);
  }

  private recentlyHandled(hi: number, lo: number): boolean {
    const now = this.d.clock.now();
    while (this.recent.length > 0 && this.recent[0]!.until + this.d.windowMs < now) this.recent.shift();
    return this.recent.some((b) => b.set.hasHash(hi, lo));
  }

  /** The minute's bucket of hashes read (kept for the duplicate window past its end). */
  private bucket(): SeenSet {
    const now = this.d.clock.now();
    const last = this.recent[this.recent.length - 1];
    if (last && now < last.until) return last.set;
    const b = { until: now + BUCKET_MS, set: new SeenSet() };
    this.recent.push(b);
    return b.set;
  }

  private hold(): void {
    if (this.total > 0 && !this.release) this.release = this.d.busy();
    else if (this.total === 0 && this.release) {
      const r = this.release;
      this.release = undefined;
      r();
    }
  }
}
