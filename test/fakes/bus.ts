// MemBus: an in-memory Bus with the NATS behaviour gaffer relies on:
// subjects with `*` and `>` wildcards, queue groups (one member each),
// asynchronous in-order delivery, and "no responders" at once for a request
// nobody subscribes to. It records every publish for assertions.

import type { MsgHdrs } from 'nats';
import { NoRespondersError, TimeoutError } from '#protocol/errors.js';
import type { Bus, BusMsg, BusStatus } from '#platform/ports.js';
import type { Clock } from '#platform/clock.js';

interface Sub {
  subject: string;
  queue: string | undefined;
  fn: (msg: BusMsg) => void;
  live: boolean;
}

/** matches says whether a subscription's subject (with wildcards) covers a concrete subject. */
export function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== '*' && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

export class MemBus implements Bus {
  private subs: Sub[] = [];
  private statusFns = new Set<(s: BusStatus) => void>();
  private inbox = 0;
  closed = false;
  /** Every message published, in order. */
  readonly published: BusMsg[] = [];

  constructor(private readonly clock: Clock) {}

  publish(subject: string, data: Uint8Array, opts?: { reply?: string | undefined; headers?: MsgHdrs | undefined }): void {
    if (this.closed) return;
    const msg: BusMsg = { subject, data, reply: opts?.reply, headers: opts?.headers };
    this.published.push(msg);
    this.deliver(msg);
  }

  private deliver(msg: BusMsg): number {
    const targets = this.subs.filter((s) => s.live && matches(s.subject, msg.subject));
    const groups = new Set<string>();
    let n = 0;
    for (const s of targets) {
      if (s.queue) {
        if (groups.has(s.queue)) continue;
        groups.add(s.queue);
      }
      n++;
      queueMicrotask(() => {
        if (!s.live) return;
        try {
          s.fn(msg);
        } catch {
          // As on the real bus: a subscriber's throw is its own bug.
        }
      });
    }
    return n;
  }

  async request(subject: string, data: Uint8Array, opts: { timeoutMs: number; headers?: MsgHdrs }): Promise<BusMsg> {
    const reply = `_INBOX.mem.${++this.inbox}`;
    return new Promise<BusMsg>((resolve, reject) => {
      const sub = this.subscribe(reply, (m) => {
        sub.unsubscribe();
        timer.cancel();
        resolve(m);
      });
      const timer = this.clock.after(opts.timeoutMs, () => {
        sub.unsubscribe();
        reject(new TimeoutError(`${subject} got no reply within ${opts.timeoutMs} ms`));
      });
      const msg: BusMsg = { subject, data, reply, headers: opts.headers };
      this.published.push(msg);
      if (this.deliver(msg) === 0) {
        sub.unsubscribe();
        timer.cancel();
        reject(new NoRespondersError(`nobody serves ${subject}`));
      }
    });
  }

  subscribe(subject: string, fn: (msg: BusMsg) => void, opts?: { queue?: string }): { unsubscribe(): void } {
    const s: Sub = { subject, queue: opts?.queue, fn, live: true };
    this.subs.push(s);
    return {
      unsubscribe: () => {
        s.live = false;
        this.subs = this.subs.filter((x) => x !== s);
      },
    };
  }

  onStatus(fn: (s: BusStatus) => void): () => void {
    this.statusFns.add(fn);
    return () => this.statusFns.delete(fn);
  }

  /** status tells every listener our connection went away or came back. */
  status(s: BusStatus): void {
    for (const fn of this.statusFns) fn(s);
  }

  async flush(): Promise<void> {}

  /** on is published messages on subjects matching pattern. */
  on(pattern: string): BusMsg[] {
    return this.published.filter((m) => matches(pattern, m.subject));
  }
}
