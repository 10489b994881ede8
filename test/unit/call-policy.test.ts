// The typed client's call policy: a short first try, then long ones; and the budget
// that rations short attempts so overload does not become a retry storm.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CALL_POLICY, tryTimeoutMs, RetryBudget } from '#client/call-policy.js';

describe('tryTimeoutMs', () => {
  test('only a first attempt the budget allows is short; every other outlasts the hold, and half the deadline', () => {
    fc.assert(
      fc.property(fc.nat(20), fc.boolean(), fc.integer({ min: 1, max: 120_000 }), (n, short, callMs) => {
        const t = tryTimeoutMs(n, short, callMs);
        if (n === 0 && short) assert.equal(t, CALL_POLICY.firstMs);
        else assert.equal(t, Math.max(CALL_POLICY.longMs, Math.floor(callMs / 2)));
      }),
    );
  });

  test('a long attempt outlasts the hold, so a held request is answered NO_LEADER rather than timed out', () => {
    assert.ok(CALL_POLICY.longMs > 3000);
    assert.ok(CALL_POLICY.firstMs < CALL_POLICY.longMs);
  });
});

describe('RetryBudget', () => {
  test('allows short attempts while fresh, and not after a run of timeouts', () => {
    const b = new RetryBudget();
    assert.equal(b.short, true);
    for (let i = 0; i < 5; i++) b.timedOut();
    assert.equal(b.short, false);
  });

  test('short attempts that time out are at most 5 plus a tenth of the answered calls, whatever the order', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 500 }), (events) => {
        const b = new RetryBudget();
        let answered = 0;
        let wasted = 0;
        for (const timeout of events) {
          if (timeout) {
            // Only a call that started short can waste a short attempt.
            if (b.short) {
              b.timedOut();
              wasted++;
            }
          } else {
            b.answered();
            answered++;
          }
        }
        assert.ok(wasted <= 5 + Math.ceil(answered / 10) + 1, `${wasted} wasted with ${answered} answered`);
      }),
    );
  });

  test('recovers once calls are answered again', () => {
    const b = new RetryBudget();
    for (let i = 0; i < 10; i++) b.timedOut();
    assert.equal(b.short, false);
    for (let i = 0; i < 60; i++) b.answered();
    assert.equal(b.short, true);
  });
});
