// Prober: only "no responders", repeated, on a stable connection, proves a peer gone.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { answerPing, Prober } from '#platform/nats/prober.js';
import { FakeClock } from '../fakes/clock.js';
import { MemBus } from '../fakes/bus.js';

const opts = { intervalMs: 100, misses: 2, stableMs: 1000 };

function setup() {
  const clock = new FakeClock();
  const bus = new MemBus(clock);
  const prober = new Prober(bus, opts, clock);
  const dead: string[] = [];
  return { clock, bus, prober, dead };
}

describe('Prober', () => {
  test('a peer that answers is never declared dead', async () => {
    const { clock, bus, prober, dead } = setup();
    bus.subscribe('peer.a', (m) => answerPing(bus, m));
    await clock.advance(1500);
    prober.watch('a', 'peer.a', () => dead.push('a'));
    await clock.advance(5000);
    assert.deepEqual(dead, []);
    prober.close();
  });

  test('no subscriber, on a stable connection: dead after two misses, once', async () => {
    const { clock, prober, dead } = setup();
    await clock.advance(1500);
    prober.watch('a', 'peer.a', () => dead.push('a'));
    await clock.advance(150);
    assert.deepEqual(dead, [], 'one miss proves nothing');
    await clock.advance(100);
    assert.deepEqual(dead, ['a']);
    await clock.advance(2000);
    assert.deepEqual(dead, ['a'], 'fires once, then stops probing');
    prober.close();
  });

  test('right after our own reconnect, misses are not believed', async () => {
    const { clock, bus, prober, dead } = setup();
    await clock.advance(1500);
    prober.watch('a', 'peer.a', () => dead.push('a'));
    bus.status('reconnect');
    await clock.advance(900);
    assert.deepEqual(dead, [], 'our connection is not stable yet');
    await clock.advance(400);
    assert.deepEqual(dead, ['a'], 'believed once stable');
    prober.close();
  });

  test('right after a server left the cluster, misses are not believed: peers on it are reconnecting elsewhere', async () => {
    const { clock, bus, prober, dead } = setup();
    await clock.advance(1500);
    prober.watch('a', 'peer.a', () => dead.push('a'));
    bus.status('cluster');
    await clock.advance(900);
    assert.deepEqual(dead, [], 'the peer may still be moving to another server');
    bus.subscribe('peer.a', (m) => answerPing(bus, m));
    await clock.advance(2000);
    assert.deepEqual(dead, [], 'it came back in time: never declared dead');
    prober.close();
  });

  test('a peer still absent once the cluster has settled is declared dead', async () => {
    const { clock, bus, prober, dead } = setup();
    await clock.advance(1500);
    prober.watch('a', 'peer.a', () => dead.push('a'));
    bus.status('cluster');
    await clock.advance(900);
    assert.deepEqual(dead, []);
    await clock.advance(400);
    assert.deepEqual(dead, ['a'], 'believed once the cluster view has been stable');
    prober.close();
  });

  test('a peer that is slow (timeouts) is not declared dead', async () => {
    const { clock, bus, prober, dead } = setup();
    bus.subscribe('peer.a', () => undefined); // subscribed, never answers
    await clock.advance(1500);
    prober.watch('a', 'peer.a', () => dead.push('a'));
    await clock.advance(10_000);
    assert.deepEqual(dead, []);
    prober.close();
  });

  test('an answer resets the count: misses must be consecutive', async () => {
    const { clock, bus, prober, dead } = setup();
    await clock.advance(1500);
    prober.watch('a', 'peer.a', () => dead.push('a'));
    await clock.advance(100); // miss 1
    const sub = bus.subscribe('peer.a', (m) => answerPing(bus, m));
    await clock.advance(100); // answered: reset
    sub.unsubscribe();
    await clock.advance(100); // miss 1 again
    assert.deepEqual(dead, []);
    await clock.advance(100);
    assert.deepEqual(dead, ['a']);
    prober.close();
  });

  test('unwatch stops probing and no callback comes later', async () => {
    const { clock, prober, dead } = setup();
    await clock.advance(1500);
    prober.watch('a', 'peer.a', () => dead.push('a'));
    prober.unwatch('a');
    await clock.advance(1000);
    assert.deepEqual(dead, []);
    assert.equal(clock.pendingTimers, 0);
    prober.close();
  });
});
