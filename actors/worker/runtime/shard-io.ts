// ShardIo is one shard attempt's side of its queues: ctx.send, ctx.inbox and
// each item's ack, fenced like emits (nothing goes out once this worker no
// longer owns the attempt), and the activity the leader's completion check
// is built on (actors/leader/core/shards.ts). It runs on the worker's own
// thread, so a kind cannot misreport its activity.
//
// The shard is idle when its kind awaits the inbox, holds no unacknowledged
// item and no busy mark (ctx.busy: work of the kind's own that is not an
// item, such as waiting for its sends' receipts), and no send of it is
// unsettled. Two rules make "every shard idle and
// every queue empty" mean "done": an ack waits until every send made before
// it is stored (an item's effects are out before it leaves the queue), and
// once the attempt has been idle, a send needs an item or a busy mark held
// (later work is caused by items, or by the kind's own busy work). Held items are kept alive with working() while owned,
// and nak'd on a clean stop so the next owner gets them at once. Delivery is
// at least once: an ack JetStream did not confirm lets the item go, and it
// comes back if the ack was lost.

import type { Json } from '#protocol/messages.js';
import { NotOwnerError } from '#protocol/errors.js';
import { orAborted } from '#platform/abortable.js';
import type { Clock, Timer } from '#platform/clock.js';
import { toJson } from './context.js';

/** What a shard needs of JetStream (src/platform/nats/shard-queues.ts). */
export interface ShardQueuesPort {
  send(resourceId: string, index: number, itemId: string, item: unknown): Promise<unknown>;
  inbox(resourceId: string, index: number): Promise<InboxPort>;
}

/** A shard's open inbox: items it took ahead of the kind wait there, kept alive, and go back on close. */
export interface InboxPort {
  next(expiresMs: number): Promise<{ item: unknown; msg: HeldMsg } | undefined>;
  /** The pull has ended (it is opened again). */
  readonly ended?: boolean;
  keep?(): void;
  close?(release: boolean): void;
}

/** The part of a JetStream message a held item needs. */
export interface HeldMsg {
  /** Delivered before (JetStream's redelivered flag: delivery count > 1). */
  readonly redelivered?: boolean;
  ackAck(): Promise<boolean>;
  working(): void;
  nak(): void;
  term(): void;
}

export interface ShardIoDeps {
  queues: ShardQueuesPort;
  resourceId: string;
  index: number;
  count: number;
  clock: Clock;
  /** Whether this attempt still runs here and the lease is held, checked before anything goes out. */
  owns(): boolean;
  /** Tells the leader the shard's activity; seq grows with each change. */
  report(idle: boolean, seq: number): void;
  /**
   * The next activity seq. The worker's counter, not this object's: a worker
   * whose lease lapsed and came back runs the same attempt again, and the
   * leader drops a report of that attempt whose seq is not above the last
   * one it took (a late copy), so a new ShardIo counting from 1 went unheard.
   */
  nextSeq: () => number;
  /** Says why the inbox could not be opened, at most once every WARN_EVERY_MS. */
  warn?: (fields: Record<string, unknown>, msg: string) => void;
}

/** How often a held item's ack deadline is pushed back, and the activity said again (for a new leader). */
const KEEP_MS = 3000;
/** How long one pull waits before it is asked again (while the attempt runs). */
const PULL_MS = 2000;
/** How long a pull that failed waits before it is tried again. */
const RETRY_MS = 500;
/** Changes of activity within this long go to the leader as one report (idle, and busy). */
const REPORT_MS = 50;
const BUSY_REPORT_MS = 1000;
const WARN_EVERY_MS = 10_000;

export class ShardIo {
  private readonly held = new Map<number, HeldMsg>();
  private refs = 0;
  /** Busy marks the kind holds (ctx.busy). */
  private busyMarks = 0;
  private sending = 0;
  /** Sends not yet settled, by sequence number; an ack waits only for those made before it. */
  private readonly unsettled = new Set<number>();
  private sendSeq = 0;
  private readonly settledWaiters: Array<{ upTo: number; resolve: () => void }> = [];
  /** Calls of next() not yet answered: the kind awaits its inbox. */
  private awaiting = 0;
  private pulling: Promise<unknown> = Promise.resolve();
  private wasIdle = false;
  private idle = false;
  /** What the last report said. */
  private saidIdle = false;
  private seq = 0;
  private closed = false;
  /** The attempt is stopping: the inbox gives nothing more, but held items may still be acknowledged. */
  private draining = false;
  private inbox: InboxPort | undefined;
  private readonly keep: Timer;
  /** Aborts when the attempt stops: a pending pull is not waited for. */
  private readonly stopping = new AbortController();
  private pendingReport: Timer | undefined;
  private pendingMs = 0;
  private warnedAt = -Infinity;
  private failures = 0;

  constructor(private readonly d: ShardIoDeps) {
    this.keep = d.clock.every(KEEP_MS, () => this.keepAlive());
  }

  /** send stores one item on shard `index`'s queue; refused once not owned, or when idle with nothing held. */
  async send(index: number, item: Json, id: string): Promise<void> {
    if (!Number.isInteger(index) || index < 0 || index >= this.d.count) throw new Error(`send: shard index must be 0 to ${this.d.count - 1}, got ${String(index)}`);
    this.fence('send');
    if (this.wasIdle && this.held.size === 0 && this.busyMarks === 0) {
      throw new Error('send refused: a shard that has been idle sends only while it holds an item or a busy mark (ack or release it after its sends)');
    }
    this.sending++;
    const seq = ++this.sendSeq;
    this.unsettled.add(seq);
    this.changed();
    try {
      await this.d.queues.send(this.d.resourceId, index, id, item);
    } finally {
      this.sending--;
      this.unsettled.delete(seq);
      this.wakeSettled();
      this.changed();
    }
  }

  /** next is the inbox's next item, or undefined once the attempt has ended. */
  next(): Promise<{ ref: number; item: Json; redelivered: boolean } | undefined> {
    // One pull at a time: a kind may ask for several items at once; they are taken in turn.
    const turn = this.pulling.then(() => this.take());
    this.pulling = turn.catch(() => undefined);
    this.awaiting++;
    this.changed();
    return turn.finally(() => {
      this.awaiting--;
      this.changed();
    });
  }

  private async take(): Promise<{ ref: number; item: Json; redelivered: boolean } | undefined> {
    while (!this.closed && !this.draining) {
      let got: Awaited<ReturnType<InboxPort['next']>>;
      try {
        if (this.inbox?.ended) this.inbox = undefined;
        this.inbox ??= await this.d.queues.inbox(this.d.resourceId, this.d.index);
        const pull = this.inbox.next(PULL_MS);
        got = await orAborted(pull, this.stopping.signal, undefined);
        // Stopping won the race: an item the pull brings later goes back at once.
        if (got === undefined && (this.closed || this.draining)) void pull.then((late) => late?.msg.nak(), () => undefined);
      } catch (err) {
        // JetStream unavailable for a moment, or the consumer is being created: try again shortly.
        this.failures++;
        const now = this.d.clock.now();
        if (now - this.warnedAt >= WARN_EVERY_MS) {
          this.warnedAt = now;
          this.d.warn?.({ shard: this.d.index, failures: this.failures, err: (err as Error).message }, 'shard inbox: could not take from the queue; trying again');
        }
        this.inbox?.close?.(false);
        this.inbox = undefined;
        await this.d.clock.sleep(RETRY_MS);
        continue;
      }
      if (!got) continue;
      if (this.closed || this.draining || !this.d.owns()) return void got.msg.nak();
      let item: Json;
      try {
        item = toJson(got.item, 'received item');
      } catch {
        got.msg.term(); // not an item any shard sent: never deliver it again
        continue;
      }
      const ref = ++this.refs;
      this.held.set(ref, got.msg);
      return { ref, item, redelivered: got.msg.redelivered === true };
    }
    return undefined;
  }

  /** ack removes a held item from its queue for good, once every send made before it is stored. */
  async ack(ref: number): Promise<void> {
    const msg = this.held.get(ref);
    if (!msg) throw new Error('ack: no such item held (acknowledged already?)');
    // Only the sends made before this ack: a shard that sends all the time
    // (a crawl) would otherwise hold every ack until its sends pause.
    await this.sendsBefore(this.sendSeq);
    this.fence('ack');
    try {
      await msg.ackAck();
    } catch {
      // JetStream did not confirm it (a server restarting, no responders, a
      // timeout): whether it landed is unknown, and nats.js sends one ack per
      // message. The item is let go rather than failing the shard: if the ack
      // was lost, the item is still stored (so the completion count sees it),
      // comes back after ack_wait flagged redelivered, and is handled again.
    }
    this.held.delete(ref);
    this.changed();
  }

  /** busy takes (+1) or gives back (-1) a busy mark: while any is held the shard is not idle and may send. */
  busy(delta: 1 | -1): void {
    if (this.closed) return;
    if (delta === -1 && this.busyMarks === 0) throw new Error('busy: no busy mark held');
    this.busyMarks += delta;
    this.changed();
  }

  /** settled resolves once no send is in flight (before an attempt that returned reports it completed). */
  settled(): Promise<void> {
    return this.sendsBefore(this.sendSeq);
  }

  /** sendsBefore resolves once every send numbered up to `upTo` has settled. */
  private sendsBefore(upTo: number): Promise<void> {
    if (this.oldestUnsettled() > upTo) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push({ upTo, resolve }));
  }

  private oldestUnsettled(): number {
    let min = Infinity;
    for (const s of this.unsettled) if (s < min) min = s;
    return min;
  }

  private wakeSettled(): void {
    if (this.settledWaiters.length === 0) return;
    const oldest = this.oldestUnsettled();
    for (let i = this.settledWaiters.length - 1; i >= 0; i--) {
      const w = this.settledWaiters[i]!;
      if (w.upTo < oldest) {
        this.settledWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /** drain ends the inbox (a pending next ends after its pull) as the attempt is asked to stop. */
  drain(): void {
    this.draining = true;
    this.stopping.abort();
  }

  /**
   * close ends the attempt's queue work: a pending next ends, and the held
   * items are nak'd when `release` (the caller's: a clean stop with the lease
   * held, so the next owner gets them at once); otherwise they come back
   * after ack_wait.
   */
  close(release: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.stopping.abort();
    this.keep.cancel();
    this.pendingReport?.cancel();
    if (release) for (const m of this.held.values()) m.nak();
    this.held.clear();
    this.inbox?.close?.(release);
  }

  private fence(what: string): void {
    if (this.closed || !this.d.owns()) throw new NotOwnerError(`${what} refused: this shard attempt no longer runs here`);
  }

  private changed(): void {
    const idle = this.awaiting > 0 && this.held.size === 0 && this.busyMarks === 0 && this.sending === 0;
    if (idle === this.idle) return;
    this.idle = idle;
    this.seq = this.d.nextSeq();
    if (idle) this.wasIdle = true;
    if (this.closed) return;
    // Idle is what completion waits for: said soon. Busy only informs (completion
    // never relies on it), so a shard flipping per item says it at most once a second.
    // Busy right after saying idle is said soon too: it changes the leader's
    // token, so a completion decided meanwhile waits for the next idle report,
    // and the progress sent with it (a stopped shard's result) is the last one.
    const ms = idle || this.saidIdle ? REPORT_MS : BUSY_REPORT_MS;
    if (this.pendingReport && this.pendingMs <= ms) return;
    this.pendingReport?.cancel();
    this.pendingMs = ms;
    this.pendingReport = this.d.clock.after(ms, () => {
      this.pendingReport = undefined;
      this.say();
    });
  }

  private say(): void {
    if (!this.closed && this.seq > 0 && this.d.owns()) {
      this.saidIdle = this.idle;
      this.d.report(this.idle, this.seq);
    }
  }

  private keepAlive(): void {
    if (this.closed || !this.d.owns()) return;
    for (const m of this.held.values()) m.working();
    this.inbox?.keep?.();
    this.say();
  }
}
