// Actor: a mailbox plus an explicit status. Messages are handled strictly one
// at a time (or one batch at a time: a batch is everything that waited while
// the previous batch ran, up to maxBatch). Stopping is itself a message: it
// runs after whatever is being handled now, and what is still queued is handed
// back to the caller so that nothing is silently dropped.

import { setImmediate } from 'node:timers/promises';

export const ActorStatus = { NotStarted: 'NotStarted', Running: 'Running', Stopped: 'Stopped' } as const;
export type ActorStatus = (typeof ActorStatus)[keyof typeof ActorStatus];

export interface ActorOptions<M = unknown> {
  /** Most messages handed to one receive call (most weight, with `weigh`). 1 means one message at a time. */
  maxBatch?: number;
  /** What a message counts toward maxBatch (default 1): a message that carries many items can weigh what they cost. */
  weigh?: (msg: M) => number;
  /** Called with any error receive throws; the actor keeps running. */
  onError?: (err: unknown) => void;
}

export class Actor<M> {
  private queue: M[] = [];
  private running = false;
  private _status: ActorStatus = ActorStatus.NotStarted;
  private idle: Array<() => void> = [];

  constructor(
    private readonly receive: (batch: M[]) => Promise<void> | void,
    private readonly opts: ActorOptions<M> = {},
  ) {
    if (opts.maxBatch !== undefined && !(Number.isInteger(opts.maxBatch) && opts.maxBatch >= 1)) {
      throw new RangeError(`maxBatch must be a whole number ≥ 1, got ${opts.maxBatch}`);
    }
  }

  get status(): ActorStatus {
    return this._status;
  }

  get pending(): number {
    return this.queue.length;
  }

  start(): this {
    if (this._status === ActorStatus.NotStarted) this._status = ActorStatus.Running;
    this.kick();
    return this;
  }

  /** send enqueues a message; false if the actor has stopped (the caller must answer it). */
  send(msg: M): boolean {
    if (this._status === ActorStatus.Stopped) return false;
    this.queue.push(msg);
    this.kick();
    return true;
  }

  /** stop waits for the message in hand, then returns what was still queued. */
  async stop(): Promise<M[]> {
    if (this._status === ActorStatus.Stopped) return [];
    this._status = ActorStatus.Stopped;
    if (this.running) await new Promise<void>((r) => this.idle.push(r));
    const rest = this.queue;
    this.queue = [];
    return rest;
  }

  private kick(): void {
    if (this.running || this._status !== ActorStatus.Running || this.queue.length === 0) return;
    this.running = true;
    queueMicrotask(() => void this.loop());
  }

  /** take says how many queued messages the next batch holds: at least one, and no more than max allows. */
  private take(max: number): number {
    const { weigh } = this.opts;
    if (!weigh) return Math.min(max, this.queue.length);
    let n = 0;
    let w = 0;
    while (n < this.queue.length) {
      const next = weigh(this.queue[n]!);
      if (n > 0 && w + next > max) break;
      w += next;
      n++;
    }
    return n;
  }

  private async loop(): Promise<void> {
    const max = this.opts.maxBatch ?? 1;
    while (this._status === ActorStatus.Running && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.take(max));
      try {
        await this.receive(batch);
      } catch (err) {
        try {
          this.opts.onError?.(err);
        } catch {
          // An error handler that throws must not wedge the mailbox.
        }
      }
      // A batch that resolves at once leaves us in microtasks, where no timer
      // or I/O runs: a long mailbox would starve the lease keepalives (a new
      // leader handed thousands of held reports lost its lease that way).
      if (this.queue.length > 0) await setImmediate();
    }
    this.running = false;
    for (const r of this.idle.splice(0)) r();
  }
}
