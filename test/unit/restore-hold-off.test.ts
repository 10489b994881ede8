// RestoreHoldOff: a one-off fence restarts at once; repeated fences wait, up to the cap; a quiet spell starts over.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HOLD_OFF, QUIET_MS, RestoreHoldOff } from '#actors/worker/restore-hold-off.js';

test('the first fence after a quiet spell restarts at once', () => {
  const h = new RestoreHoldOff(() => 0.5);
  h.fenced(1_000);
  assert.equal(h.restoredWaitMs(), 0);
  h.fenced(1_000 + QUIET_MS + 1);
  assert.equal(h.restoredWaitMs(), 0, 'a minute later it is a one-off again');
});

test('fences in quick succession wait (Backoff: growing, tested in backoff.test.ts), never past the cap, and start over after a quiet spell', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: QUIET_MS }), { minLength: 2, maxLength: 30 }), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), (gaps, r) => {
      const h = new RestoreHoldOff(() => r);
      let now = 0;
      h.fenced(now);
      h.restoredWaitMs();
      const waits: number[] = [];
      for (const gap of gaps) {
        h.fenced((now += gap));
        waits.push(h.restoredWaitMs());
      }
      for (const w of waits) assert.ok(w > 0 && w <= HOLD_OFF.maxMs, `wait ${w}`);
      h.fenced(now + QUIET_MS + 1);
      assert.equal(h.restoredWaitMs(), 0);
    }),
  );
});
