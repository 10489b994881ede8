// BudgetedQueue is a queue-group subscription that a hung process cannot keep
// for ever. nats-server 2.9 counts its own deliveries to a client as activity,
// so a paused (SIGSTOPped) master that keeps receiving requests is never
// pinged and keeps its share of the queue group for as long as traffic flows.
//
// So every subscription carries a server-side budget (UNSUB <sid> <max>): the
// server removes it by itself after BUDGET deliveries, and only a live process
// opens the next one. The budget is not what bounds a hung master in time:
// detection is (the watchdog, /healthz and a supervisor; see the README). It
// is sized for bursts instead. A burst of plain requests lands in
// microseconds, long before any process can resubscribe, so what a burst
// finds is what the live masters have left: below that, "no responders"
// (503) for everything past it. Each subscription therefore always keeps at
// least FLOOR deliveries in hand: the next one goes out once FLOOR are left,
// so even one master alone takes a burst of FLOOR at any moment, after any
// idle time. A hung master holds at most BUDGET + FLOOR of its traffic.

import type { Msg, NatsConnection, Subscription } from 'nats';

/** The largest burst one live master takes at any moment: the 1,000 concurrent requests we promise, with one master left. */
export const FLOOR = 1024;
/** Deliveries per subscription: twice the floor, so one renewal per FLOOR messages. */
export const BUDGET = 2 * FLOOR;

interface Budgeted {
  sub: Subscription;
  left: number;
  renewed: boolean;
}

export class BudgetedQueue {
  /** Subscriptions with budget left: the newest, and the one it overlaps. */
  private readonly live = new Set<Budgeted>();
  private stopped = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subject: string,
    private readonly queue: string,
    private readonly onMessage: (msg: Msg) => void,
  ) {
    this.arm();
  }

  private arm(): void {
    if (this.stopped || this.nc.isClosed()) return;
    const b: Budgeted = { sub: undefined as unknown as Subscription, left: BUDGET, renewed: false };
    b.sub = this.nc.subscribe(this.subject, { queue: this.queue, max: BUDGET, callback: (err, msg) => !err && this.receive(b, msg) });
    this.live.add(b);
  }

  private receive(b: Budgeted, msg: Msg): void {
    b.left--;
    if (b.left <= 0) this.live.delete(b);
    // The next subscription goes out before we handle this message.
    if (!b.renewed && b.left <= FLOOR) {
      b.renewed = true;
      this.arm();
    }
    this.onMessage(msg);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const subs = [...this.live].map((b) => b.sub);
    this.live.clear();
    await Promise.all(subs.map((sub) => sub.drain().catch(() => undefined)));
  }
}
