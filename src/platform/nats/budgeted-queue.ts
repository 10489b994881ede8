// BudgetedQueue is a queue-group subscription that can black-hole only a few
// messages if its process hangs. nats-server 2.9 counts its own deliveries to
// a client as activity, so a paused (SIGSTOPped) master that keeps receiving
// requests is never pinged and keeps its share of the queue group for as long
// as traffic flows: minutes of timeouts for plain `nats req` users.
//
// So every subscription carries a server-side budget (UNSUB <sid> <max>): the
// server removes it by itself after `budget` deliveries. A live process opens
// the next one as the last message of the budget arrives; a hung one cannot,
// and drops out of the group after at most `budget` messages. The budget
// follows the traffic (about a quarter second of it, from 2 to 64), so a busy
// master does not resubscribe on every message.

import type { Msg, NatsConnection, Subscription } from 'nats';
import { performance } from 'node:perf_hooks';

const MIN_BUDGET = 2;
const MAX_BUDGET = 64;
/** A hung process holds about this much of its traffic. */
const HOLD_S = 0.25;

export class BudgetedQueue {
  private sub: Subscription | undefined;
  private left = 0;
  /** Messages per second, smoothed. */
  private rate = 0;
  private last = performance.now();
  private stopped = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subject: string,
    private readonly queue: string,
    private readonly onMessage: (msg: Msg) => void,
  ) {
    this.arm();
  }

  private budget(): number {
    return Math.max(MIN_BUDGET, Math.min(MAX_BUDGET, Math.ceil(this.rate * HOLD_S)));
  }

  private arm(): void {
    if (this.stopped || this.nc.isClosed()) return;
    const budget = this.budget();
    this.left = budget;
    this.sub = this.nc.subscribe(this.subject, { queue: this.queue, max: budget, callback: (err, msg) => !err && this.receive(msg) });
  }

  private receive(msg: Msg): void {
    const now = performance.now();
    const dt = Math.max(1e-3, (now - this.last) / 1000);
    this.last = now;
    // An exponentially weighted rate, with about a second of memory.
    const w = Math.min(1, dt);
    this.rate = this.rate * (1 - w) + (1 / dt) * w;
    // The last message of this budget: the next subscription goes out before we handle it.
    if (--this.left === 0) this.arm();
    this.onMessage(msg);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const sub = this.sub;
    this.sub = undefined;
    await sub?.drain().catch(() => undefined);
  }
}
