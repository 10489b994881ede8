// MovePacer: a healthy etcd never sees it; slow commits halve the rate down to the floor; calm brings it back.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MovePacer, PACING } from '#actors/leader/move-pacer.js';

test('with fast commits the allowance is the whole rate, spent and refilled by time', () => {
  const p = new MovePacer(0);
  assert.equal(p.allowance(0), PACING.maxRate);
  p.observe(PACING.slowMs - 1, 10);
  assert.equal(p.allowance(10), PACING.maxRate);
  p.spend(PACING.maxRate);
  assert.equal(p.allowance(10), 0);
  assert.equal(p.allowance(510), PACING.maxRate / 2, 'half a second refills half');
  assert.equal(p.allowance(5000), PACING.maxRate, 'never more than a second of it');
});

test('slow commits halve the rate once per cutEveryMs, down to the floor; a calm spell brings it back', () => {
  const p = new MovePacer(0);
  p.observe(PACING.slowMs, 1000);
  assert.equal(p.currentRate, PACING.maxRate / 2);
  p.observe(PACING.slowMs * 4, 1000 + PACING.cutEveryMs - 1);
  assert.equal(p.currentRate, PACING.maxRate / 2, 'one cut per cutEveryMs');
  let now = 1000;
  for (let i = 0; i < 20; i++) p.observe(PACING.slowMs, (now += PACING.cutEveryMs));
  assert.equal(p.currentRate, PACING.minRate);
  assert.ok(p.allowance(now) <= PACING.minRate);
  // Ten calm seconds after the cut's own second.
  p.allowance(now + PACING.cutEveryMs + 10_000);
  assert.equal(p.currentRate, PACING.minRate + 10 * PACING.increasePerSecond);
  p.allowance(now + 1_000_000);
  assert.equal(p.currentRate, PACING.maxRate);
});

test('whatever the commit times, the allowance stays within a second of the current rate, and the rate within its bounds', () => {
  fc.assert(
    fc.property(fc.array(fc.record({ gap: fc.nat(3000), ms: fc.nat(2000), spent: fc.nat(30_000) }), { maxLength: 60 }), (steps) => {
      const p = new MovePacer(0);
      let now = 0;
      for (const { gap, ms, spent } of steps) {
        now += gap;
        p.observe(ms, now);
        const a = p.allowance(now);
        assert.ok(a >= 0 && a <= p.currentRate, `allowance ${a} at rate ${p.currentRate}`);
        assert.ok(p.currentRate >= PACING.minRate && p.currentRate <= PACING.maxRate);
        p.spend(Math.min(a, spent));
      }
    }),
  );
});
