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
// follows the traffic (about a quarter second of it, from 2 to 256), so a busy
// master does not resubscribe on every message.
//
// Under load the next subscription goes out early, once half the budget is
// used: the server delivers faster than a busy process handles, and a
// subscription opened only as its predecessor's last message is handled
// leaves a gap in which a burst finds nobody (no responders, 503). A hung
// process then holds at most one and a half budgets. At idle rates (budgets
// below 4) it goes out with the last message, so a paused master holds at
// most 2 requests of a slow client.
//
// The rate is measured per quarter second, and a budget used up faster than
// that raises it at once (a burst from idle ramps in a few subscriptions, not
// hundreds of messages). When traffic falls, a live process replaces a
// subscription whose budget left is far above the new rate's, so a master
// that hangs later, in quieter traffic, holds only a little of it.

import type { Msg, NatsConnection, Subscription } from 'nats';
import { performance } from 'node:perf_hooks';

const MIN_BUDGET = 2;
const MAX_BUDGET = 256;
/** From this budget on, the next subscription overlaps the current one. */
const EARLY_FROM = 4;
/** A hung process holds about this much of its traffic. */
const HOLD_S = 0.25;

interface Budgeted {
  sub: Subscription;
  budget: number;
  left: number;
  /** Open the next subscription when this many are left. */
  nextAt: number;
  renewed: boolean;
  openedAt: number;
}

export class BudgetedQueue {
  /** Subscriptions with budget left: the newest (current), and the one it overlaps. */
  private readonly live = new Set<Budgeted>();
  private current: Budgeted | undefined;
  /** Messages per second. */
  private rate = 0;
  private counted = 0;
  private readonly ticker: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subject: string,
    private readonly queue: string,
    private readonly onMessage: (msg: Msg) => void,
  ) {
    this.arm();
    this.ticker = setInterval(() => this.tick(), HOLD_S * 1000);
    this.ticker.unref();
  }

  private budget(): number {
    return Math.max(MIN_BUDGET, Math.min(MAX_BUDGET, Math.ceil(this.rate * HOLD_S)));
  }

  private arm(): void {
    if (this.stopped || this.nc.isClosed()) return;
    const budget = this.budget();
    const b: Budgeted = {
      sub: undefined as unknown as Subscription,
      budget,
      left: budget,
      nextAt: budget >= EARLY_FROM ? Math.floor(budget / 2) : 0,
      renewed: false,
      openedAt: performance.now(),
    };
    b.sub = this.nc.subscribe(this.subject, { queue: this.queue, max: budget, callback: (err, msg) => !err && this.receive(b, msg) });
    this.live.add(b);
    this.current = b;
  }

  private tick(): void {
    // Half the last quarter second, half what came before.
    this.rate = this.rate / 2 + this.counted / HOLD_S / 2;
    this.counted = 0;
    const b = this.current;
    if (!b || b.renewed || this.stopped) return;
    // Traffic fell: swap a budget sized for more for one sized for now. The
    // old one drains (the server stops delivering, what it sent is handled).
    if (b.left > 2 * this.budget()) {
      b.renewed = true;
      this.arm();
      this.live.delete(b);
      void b.sub.drain().catch(() => undefined);
    }
  }

  private receive(b: Budgeted, msg: Msg): void {
    this.counted++;
    b.left--;
    if (b.left <= 0) {
      this.live.delete(b);
      // Used up faster than HOLD_S: the rate is at least this.
      const s = (performance.now() - b.openedAt) / 1000;
      if (s < HOLD_S) this.rate = Math.max(this.rate, b.budget / Math.max(s, 1e-3));
    }
    // The next subscription goes out before we handle this message.
    if (!b.renewed && b.left <= b.nextAt) {
      b.renewed = true;
      this.arm();
    }
    this.onMessage(msg);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.ticker);
    const subs = [...this.live].map((b) => b.sub);
    this.live.clear();
    this.current = undefined;
    await Promise.all(subs.map((sub) => sub.drain().catch(() => undefined)));
  }
}
