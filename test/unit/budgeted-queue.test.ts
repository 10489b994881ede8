// BudgetedQueue keeps at least FLOOR deliveries in hand at every moment, so a
// burst never finds a live master's share of the queue group empty; and a
// subscription ends after its budget (a hung master holds a bounded amount).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Msg, NatsConnection, Subscription, SubscriptionOptions } from 'nats';
import { BUDGET, BudgetedQueue, FLOOR } from '#platform/nats/budgeted-queue.js';

/** A fake connection: the server's side of each subscription is its budget left. */
class FakeNc {
  readonly subs: Array<{ left: number; cb: (err: null, msg: Msg) => void; max: number }> = [];
  subscribe(_subject: string, opts: SubscriptionOptions): Subscription {
    const s = { left: opts.max ?? Infinity, max: opts.max ?? Infinity, cb: opts.callback as (err: null, msg: Msg) => void };
    this.subs.push(s);
    return { drain: async () => undefined } as unknown as Subscription;
  }
  isClosed(): boolean {
    return false;
  }
  /** What the server could deliver in one instant. */
  get inHand(): number {
    return this.subs.reduce((n, s) => n + s.left, 0);
  }
  /** deliver one message to the first subscription with budget left (the server's choice does not matter here). */
  deliver(): boolean {
    const s = this.subs.find((x) => x.left > 0);
    if (!s) return false;
    s.left--;
    s.cb(null, {} as Msg);
    return true;
  }
}

describe('BudgetedQueue', () => {
  test('every subscription carries the budget, and at least FLOOR stay in hand after any number of deliveries', () => {
    fc.assert(
      fc.property(fc.nat(10_000), (n) => {
        const nc = new FakeNc();
        let handled = 0;
        new BudgetedQueue(nc as unknown as NatsConnection, 'resource.add', 'masters', () => handled++);
        for (let i = 0; i < n; i++) {
          assert.equal(nc.deliver(), true);
          assert.ok(nc.inHand >= FLOOR, `${nc.inHand} in hand after ${i + 1}`);
        }
        assert.equal(handled, n);
        assert.ok(nc.subs.every((s) => s.max === BUDGET));
      }),
      { numRuns: 30 },
    );
  });

  test('a process that hangs is delivered at most BUDGET + FLOOR more, whenever it hangs', () => {
    fc.assert(
      fc.property(fc.nat(5000), (before) => {
        const nc = new FakeNc();
        new BudgetedQueue(nc as unknown as NatsConnection, 'resource.add', 'masters', () => undefined);
        for (let i = 0; i < before; i++) nc.deliver();
        // Hung from now on: no callback runs, so nothing is renewed.
        for (const s of nc.subs) s.cb = () => undefined;
        let more = 0;
        while (nc.deliver()) more++;
        assert.ok(more <= BUDGET + FLOOR, `${more} delivered after ${before}`);
      }),
      { numRuns: 30 },
    );
  });

  test('a burst of FLOOR after idle is all delivered', () => {
    const nc = new FakeNc();
    new BudgetedQueue(nc as unknown as NatsConnection, 'resource.add', 'masters', () => undefined);
    // The burst lands before the process runs: nothing renews meanwhile.
    for (const s of nc.subs) s.cb = () => undefined;
    let got = 0;
    for (let i = 0; i < FLOOR; i++) if (nc.deliver()) got++;
    assert.equal(got, FLOOR);
  });
});
