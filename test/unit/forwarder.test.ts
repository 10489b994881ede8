// Master forwarding: forward, ack, resend, sweep.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Forwarder, FORGET_AFTER_MS, RESEND_AFTER_MS } from '#actors/master/forwarder.js';
import { packed } from '#protocol/codec.js';
import { Header } from '#protocol/subjects.js';
import { logger } from '#platform/log.js';
import type { ClientRequest } from '#protocol/request.js';
import { FakeClock } from '../fakes/clock.js';
import { MemBus } from '../fakes/bus.js';
import { add } from '../fakes/requests.js';

function setup() {
  const clock = new FakeClock();
  const bus = new MemBus(clock);
  const routed: ClientRequest[] = [];
  const acked: Array<{ id: string; failed: boolean }> = [];
  const f = new Forwarder(bus, clock, 'm2', {
    route: (req) => routed.push(req),
    acked: (req, _s, failed) => acked.push({ id: req.id, failed }),
  }, logger());
  return { clock, bus, f, routed, acked };
}

describe('Forwarder', () => {
  test('forwards to the leader subject, keeping the reply subject, with origin and request id headers', () => {
    const { bus, f } = setup();
    const req = add('a', { id: 'x1' });
    f.forward(req, 'm1');
    const [m] = bus.on('master.leader.m1');
    assert.ok(m);
    assert.equal(m.reply, req.reply);
    assert.equal(m.headers?.get(Header.origin), 'm2');
    assert.equal(m.headers?.get(Header.requestId), 'x1');
    assert.equal(m.headers?.get(Header.subject), 'resource.add');
    assert.equal(f.pending, 1);
  });

  test('an ack retires what it names and reports errors; an unknown id or malformed ack changes nothing', () => {
    const { f, acked } = setup();
    f.forward(add('a', { id: 'x1' }), 'm1');
    f.forward(add('b', { id: 'x2' }), 'm1');
    f.onAck(packed.encode({ ids: ['x1', 'nope'], errors: ['x1'] }));
    f.onAck(new Uint8Array([0xc1]));
    f.onAck(packed.encode({ nothing: true }));
    assert.deepEqual(acked, [{ id: 'x1', failed: true }]);
    assert.equal(f.pending, 1);
  });

  test('a request forwarded by another master is passed on but not tracked (its origin tracks it)', () => {
    const { f } = setup();
    f.forward(add('a', { id: 'x1', origin: 'm3' }), 'm1');
    assert.equal(f.pending, 0);
  });

  test('on a leader change, what the old leader never acknowledged is routed again', () => {
    const { f, routed } = setup();
    f.forward(add('a', { id: 'x1' }), 'm1');
    f.forward(add('b', { id: 'x2' }), 'm3');
    f.resend((leader) => leader !== 'm3');
    assert.deepEqual(routed.map((r) => r.id), ['x1']);
    assert.equal(f.pending, 1);
  });

  test('an unacknowledged request is resent after RESEND_AFTER_MS and forgotten FORGET_AFTER_MS after it arrived', async () => {
    const { clock, f, routed } = setup();
    f.forward(add('a', { id: 'x1', receivedAt: clock.now() }), 'm1');
    await clock.advance(RESEND_AFTER_MS - 100);
    assert.equal(routed.length, 0, 'not yet');
    await clock.advance(1200);
    assert.deepEqual(routed.map((r) => r.id), ['x1']);
    // Routed again (as the master would), and still never acked:
    f.forward(routed[0]!, 'm1');
    await clock.advance(FORGET_AFTER_MS);
    assert.equal(f.pending, 0, 'forgotten: nobody waits for it any more');
    const resends = routed.length;
    await clock.advance(RESEND_AFTER_MS * 3);
    assert.equal(routed.length, resends, 'and never sent again');
    f.stop();
  });
});
