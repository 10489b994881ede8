// KeptLease: the self-fence deadline on the monotonic clock.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fencingTiming, KeptLease } from '#platform/etcd/lease.js';
import { FakeClock } from '../fakes/clock.js';
import { MemStore } from '../fakes/store.js';

async function setup() {
  const clock = new FakeClock();
  const store = new MemStore(clock);
  const calls: Array<{ what: string; at: number }> = [];
  const timing = fencingTiming(3); // trust 1200 ms after each keepalive sent, beat every 300 ms
  const lease = await KeptLease.grant(
    store,
    timing,
    {
      onFenced: () => calls.push({ what: 'fenced', at: clock.now() }),
      onRestored: () => calls.push({ what: 'restored', at: clock.now() }),
      onExpired: () => calls.push({ what: 'expired', at: clock.now() }),
    },
    clock,
  );
  return { clock, store, lease, calls, timing };
}

describe('KeptLease', () => {
  test('while keepalives succeed it stays alive and never fences', async () => {
    const { clock, lease, calls } = await setup();
    await clock.advance(10_000);
    assert.equal(lease.alive, true);
    assert.deepEqual(calls, []);
    lease.release();
  });

  test('when keepalives hang, it fences exactly at the deadline: validity after the last keepalive that was sent and answered', async () => {
    const { clock, store, lease, calls, timing } = await setup();
    await clock.advance(1000); // beats 300, 600 and 900 ms after the grant succeed
    const lastGood = clock.now() - 100; // the one sent at 900 ms
    store.keepAliveHook = () => new Promise<number>(() => undefined); // etcd stops answering
    const deadline = lastGood + timing.validityMs;
    await clock.advance(deadline - 1 - clock.now());
    assert.equal(lease.alive, true, 'still inside the window');
    assert.equal(calls.length, 0);
    await clock.advance(2000);
    assert.deepEqual(calls.map((c) => c.what), ['fenced']);
    const at = calls[0]?.at ?? NaN;
    assert.ok(at >= deadline && at <= deadline + 1, `fenced at the deadline ${deadline}, not ${at}`);
    assert.equal(lease.alive, false);
    lease.release();
  });

  test('the fence deadline is always before the server could expire the lease', async () => {
    const { timing } = await setup();
    assert.ok(timing.validityMs < timing.ttlSeconds * 1000);
  });

  test('keepalives that fail, then succeed again before the server expires it: fenced, then restored', async () => {
    const { clock, store, lease, calls } = await setup();
    store.keepAliveHook = () => Promise.reject(new Error('etcd unreachable'));
    await clock.advance(1500);
    assert.deepEqual(calls.map((c) => c.what), ['fenced']);
    store.keepAliveHook = undefined;
    await clock.advance(400);
    assert.deepEqual(calls.map((c) => c.what), ['fenced', 'restored']);
    assert.equal(lease.alive, true);
    lease.release();
  });

  test('a keepalive answered after the deadline, before the fence timer ran (a blocked process): restored, so a holder that fenced itself on `alive` goes on', async () => {
    // The scale fill: a pool of 25 workers blocked past its deadline; each
    // saw `alive` false and fenced itself, the keepalive's answer came before
    // the fence timer, and with no onRestored its tasks stayed stopped until
    // a new leader happened to make it resync.
    const { clock, store, lease, calls, timing } = await setup();
    let answer!: (ttl: number) => void;
    store.keepAliveHook = () => new Promise<number>((r) => (answer = r));
    await clock.advance(300); // a beat is sent and hangs
    clock.jump(timing.validityMs); // blocked past the deadline; no timer has run
    assert.equal(lease.alive, false, 'a holder asking now is told no');
    store.keepAliveHook = undefined;
    answer(timing.ttlSeconds);
    await clock.advance(0);
    assert.deepEqual(calls.map((c) => c.what), ['restored']);
    lease.release();
  });

  test('a keepalive answered with TTL 0 means the server expired it: expired, and no more beats', async () => {
    const { clock, store, lease, calls } = await setup();
    store.expire(lease.id);
    await clock.advance(1000);
    assert.deepEqual(calls.map((c) => c.what), ['expired']);
    assert.equal(lease.alive, false);
    assert.equal(clock.pendingTimers, 0, 'no timer left behind');
  });

  test('revoke deletes the lease on the server and stops every timer', async () => {
    const { clock, store, lease } = await setup();
    await lease.revoke();
    assert.equal(store.hasLease(lease.id), false);
    assert.equal(clock.pendingTimers, 0);
  });
});
