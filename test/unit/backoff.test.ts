// Backoff: a failed step's retry waits longer each time, up to the cap,
// jittered so that a fleet failing together spreads out; a success starts over.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Backoff } from '#platform/retry.js';

test('each failure waits at most the cap; the waits grow, spread out, and start over after a reset', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 50 }), (initialMs, factor) => {
      const maxMs = initialMs * factor;
      const b = new Backoff({ initialMs, maxMs });
      const waits = Array.from({ length: 30 }, () => b.next());
      for (const w of waits) assert.ok(w >= 0 && w <= maxMs, `${w} within [0, ${maxMs}]`);
      b.reset();
      assert.ok(b.next() <= initialMs * 3, 'after a reset the first wait is short again');
    }),
  );
  // A fleet of 1,000 failing at once: the tenth retry is spread over the window, not one instant.
  const tenth = Array.from({ length: 1000 }, () => {
    const b = new Backoff({ initialMs: 500, maxMs: 15_000 });
    let w = 0;
    for (let i = 0; i < 10; i++) w = b.next();
    return w;
  });
  const mean = tenth.reduce((a, b) => a + b, 0) / tenth.length;
  assert.ok(mean > 2000, `the waits grow (mean of the tenth ${Math.round(mean)} ms)`);
  assert.ok(new Set(tenth.map((w) => Math.round(w / 100))).size > 50, 'and are spread out, also at the cap');
});
