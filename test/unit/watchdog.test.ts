// The watchdog's setting and the health probe's verdict, on plain values
// (the watchdog against real processes: test/integration/watchdog.test.ts).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWatchdogMs, UsageError } from '#platform/config.js';
import { healthProbe } from '#platform/health.js';

describe('watchdog', () => {
  test('--watchdog-ms: off by default, 0 or off; a whole number of ms from 500 on', () => {
    assert.equal(parseWatchdogMs(undefined), undefined);
    assert.equal(parseWatchdogMs('0'), undefined);
    assert.equal(parseWatchdogMs('off'), undefined);
    assert.equal(parseWatchdogMs('1500'), 1500);
    for (const bad of ['100', '1.5', 'x', '-1', '700000']) assert.throws(() => parseWatchdogMs(bad), UsageError);
  });
});

describe('healthProbe', () => {
  test('is ok only when every check passes, and says which fails and why', () => {
    assert.deepEqual(healthProbe({ a: () => undefined })(), { ok: true, checks: { a: 'ok' } });
    const r = healthProbe({
      a: () => undefined,
      b: () => 'NATS disconnected',
      c: () => {
        throw new Error('boom');
      },
    })();
    assert.equal(r.ok, false);
    assert.deepEqual(r.checks, { a: 'ok', b: 'NATS disconnected', c: 'check failed: boom' });
  });
});
