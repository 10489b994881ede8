// ShardMemory is what one shard of a sharded crawl remembers of URLs: those
// taken (held, finished, or claimed by a redirect), those finished, and the
// items it holds now; durable in its task store, the finished ones (its seen
// log, seen-log.ts, which is also the receipt its senders wait for) and
// every URL it sent (its sent log, sent-log.ts); and the receipts it waits
// for itself (receipts.ts). The shard loop (sharded.ts) asks it what an
// arriving item is, and tells it what it sent and what it finished.

import type { TaskContext } from '#kinds/api.js';
import type { Clock } from '#platform/clock.js';
import { SHARD_QUEUE_DEFAULTS } from '#platform/nats/shard-queues.js';
import { urlId } from './partition.js';
import { Receipts } from './receipts.js';
import { deltaKey, loadSeen, SeenLog } from './seen-log.js';
import { hash64, SeenSet } from './seen-set.js';
import { loadSent, SentLog } from './sent-log.js';
import type { Job } from './shard-items.js';

/** How a copy of a URL arrived: deferred (`k`), sent again for want of a receipt (`r`), or delivered before. */
export interface Copy {
  k: number;
  r: number;
  redelivered: boolean;
}

export class ShardMemory {
  /** URLs taken; a copy of one is a duplicate unless it is the live copy. */
  readonly seen = new SeenSet();
  /** URLs finished (fetched, failed for good, skipped): what the seen log holds. */
  private readonly finished = new SeenSet();
  /** The ids of the URLs of the items held now. */
  private readonly holding = new Set<string>();
  private readonly receipts: Receipts;
  private seenLog: SeenLog | undefined;
  private sentLog: SentLog | undefined;

  constructor(
    private readonly ctx: TaskContext,
    private readonly clock: Clock,
    /** The shard that owns a URL's host. */
    private readonly owner: (url: string) => number,
    resent: number,
    resendMs?: number,
  ) {
    const index = ctx.shard.index;
    this.receipts = new Receipts({
      clock,
      count: ctx.shard.count,
      read: (o, n) => ctx.store!.getShard(o, deltaKey(n)),
      resend: (o, url, depth, tries) => ctx.send(o, { u: url, d: depth, r: tries }, { id: `${urlId(url)}.r${tries}` }),
      busy: () => ctx.busy(),
      windowMs: SHARD_QUEUE_DEFAULTS.duplicateWindowMs,
      ...(resendMs !== undefined ? { resendMs } : {}),
      warn: (fields, msg) => ctx.log.warn({ ...fields, shard: index }, msg),
    });
    this.receipts.resent = resent;
  }

  /** URLs sent again for want of a receipt (restored from the checkpoint, then counted on). */
  get resent(): number {
    return this.receipts.resent;
  }

  /** URLs sent and not yet handled by their owners. */
  get unconfirmed(): number {
    return this.receipts.outstanding;
  }

  get loaded(): boolean {
    return this.seenLog !== undefined && this.sentLog !== undefined;
  }

  /** written is how many seen and sent deltas are stored (what the etcd checkpoint keeps). */
  get written(): { seen: number; sent: number } {
    return { seen: this.seenLog?.written ?? 0, sent: this.sentLog?.written ?? 0 };
  }

  /**
   * load reads the seen deltas back, and the sent ones, whose URLs wait for
   * their receipts again; the checkpoint's counts say how many at least were
   * written.
   */
  async load(written: { seen: number; sent: number }): Promise<void> {
    const started = Date.now();
    const store = this.ctx.store!;
    const index = this.ctx.shard.index;
    const got = await loadSeen(store, written.seen, this.seen, this.finished);
    let urls = 0;
    const sent = await loadSent(store, written.sent, (url, depth) => {
      urls++;
      this.receipts.expect(this.owner(url), url, depth, ...hash64(url));
    });
    if (got.hashes > 0 || got.lost > 0 || urls > 0) {
      this.ctx.log.info({ shard: index, deltas: got.next, urls: got.hashes, sent: urls, lost: got.lost + sent.lost, ms: Date.now() - started }, 'crawl: seen-set and sent log loaded');
    }
    if (got.lost + sent.lost > 0) {
      this.ctx.log.warn({ shard: index, lost: got.lost, sentLost: sent.lost }, 'crawl: deltas missing from the task store (it drops its oldest writes when full); their URLs may be fetched again, or their receipts not awaited');
    }
    this.seenLog = new SeenLog(store, this.clock, got.next);
    this.sentLog = new SentLog(store, this.clock, sent.next);
  }

  /** sending logs a URL about to be sent and waits for its receipt. */
  sending(to: number, url: string, depth: number): void {
    this.sentLog!.add([[url, depth]]);
    this.receipts.expect(to, url, depth, ...hash64(url));
  }

  /**
   * take says whether an arriving copy of a URL is to be held (and holds it)
   * or dropped as a duplicate. A finished URL's copy is a duplicate, logged
   * again as the receipt its sender may be waiting for. A taken, unfinished
   * URL's copy is a duplicate unless it is the one live copy: a deferred one,
   * one delivered before whose work was cut off (a move or restart: at most
   * what was held then), or one sent again for want of a receipt whose URL
   * is held nowhere here.
   */
  take(hash: readonly [number, number], id: string, copy: Copy): boolean {
    const [hi, lo] = hash;
    if (!this.seen.addHash(hi, lo)) {
      if (this.finished.hasHash(hi, lo)) {
        this.seenLog!.addHash(hi, lo);
        return false;
      }
      const live = copy.k > 0 || copy.redelivered || (copy.r > 0 && !this.holding.has(id));
      if (!live) return false;
    }
    this.holding.add(id);
    return true;
  }

  /**
   * let resolves once a held job may be acknowledged: its URL (and any
   * redirect target it claimed) in a stored seen delta, unless `finished` is
   * false (deferred: a copy of it is queued again), and the sent delta with
   * its links stored.
   */
  let(job: Job, finished: boolean): Promise<unknown> {
    this.holding.delete(job.id);
    if (finished) {
      const hashes = [...job.hash, ...(job.claimed ?? [])];
      for (let i = 0; i < hashes.length; i += 2) {
        this.finished.addHash(hashes[i]!, hashes[i + 1]!);
        job.ticket = Math.max(job.ticket, this.seenLog!.addHash(hashes[i]!, hashes[i + 1]!));
      }
    }
    return Promise.all([this.seenLog!.durable(job.ticket), this.sentLog!.durable(this.sentLog!.filling)]);
  }

  /** poll reads the receipts waited for (once a second); never rejects. */
  poll(): Promise<void> {
    return this.loaded ? this.receipts.poll() : Promise.resolve();
  }

  flush(): void {
    this.seenLog?.flush();
    this.sentLog?.flush();
  }

  close(): void {
    this.seenLog?.close();
    this.sentLog?.close();
  }
}
