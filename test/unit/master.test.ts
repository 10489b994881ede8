// The master's own rules on in-memory ports: a request goes to the leader
// another master runs (and again to the next one if it was never
// acknowledged), waits parked while no leader is known, is answered
// NO_LEADER (or UNAVAILABLE) once it waited too long, and goes into our own
// leader's mailbox when we lead.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Master } from '#actors/master/master.js';
import { keys } from '#protocol/keys.js';
import { json, packed } from '#protocol/codec.js';
import { ClientSubject, Header, subjects } from '#protocol/subjects.js';
import { createMetrics } from '#platform/metrics.js';
import { logger } from '#platform/log.js';
import { FakeClock } from '../fakes/clock.js';
import { MemBus } from '../fakes/bus.js';
import { MemStore } from '../fakes/store.js';
import { FakeElection } from '../fakes/election.js';
import type { HandOverRule } from '#actors/leader/hand-over.js';

const PARK_MS = 3000;

async function setup(opts: { handOver?: HandOverRule } = {}) {
  const clock = new FakeClock();
  const bus = new MemBus(clock);
  const store = new MemStore(clock);
  const errors: Array<{ subject: string; message: string }> = [];
  let election!: FakeElection;
  const master = new Master({
    id: 'm2',
    bus,
    store,
    clock,
    log: logger(),
    metrics: createMetrics({ defaultMetrics: false }),
    elect: (cb) => (election = new FakeElection('m2', cb)),
    parkMs: PARK_MS,
    standby: false,
    ...(opts.handOver ? { handOver: opts.handOver } : {}),
    countError: (subject, err) => errors.push({ subject, message: err.message }),
  });
  await master.start();
  return { clock, bus, store, master, election, errors };
}

let n = 0;
/** send hands the master one client message, as the client service does; returns its reply subject. */
function send(master: Master, body: unknown, opts: { subject?: string; reply?: string } = {}): string {
  const reply = opts.reply ?? `_INBOX.c.${++n}`;
  const subject = opts.subject ?? ClientSubject.add;
  master.receive(subject, { subject, data: json.encode(body), reply });
  return reply;
}

/** stop stops the master, running the clock: it waits up to the park time for what it handed on to be acknowledged. */
async function stop(master: Master, clock: FakeClock): Promise<void> {
  const done = master.stop();
  await clock.advance(PARK_MS + 100);
  await done;
}

const answers = (bus: MemBus, reply: string) => bus.on(reply).map((m) => json.decode(m.data) as { ok: boolean; error?: { code: string } });
const forwardedTo = (bus: MemBus, leader: string) => bus.on(subjects.leader(leader));
const nameOf = (m: { data: Uint8Array }) => (json.decode(m.data) as { name: string }).name;

describe('Master', () => {
  test('a request on a follower goes to the leader with the client reply subject, and is retired by the ack', async () => {
    const { clock, bus, master, election } = await setup();
    election.lead('m1');
    const reply = send(master, { name: 'a', spec: {} });
    const [fwd] = forwardedTo(bus, 'm1');
    assert.ok(fwd, 'forwarded');
    assert.equal(fwd.reply, reply);
    assert.equal(fwd.headers?.get(Header.origin), 'm2');
    const id = fwd.headers!.get(Header.requestId);
    assert.ok(id, 'given a request id');
    bus.publish(subjects.masterAck('m2'), packed.encode({ ids: [id] }));
    // A new leader gets nothing: the old one acknowledged it.
    await clock.advance(10);
    election.lead('m3');
    await clock.advance(10);
    assert.equal(forwardedTo(bus, 'm3').length, 0);
    await stop(master, clock);
  });

  test('what a leader never acknowledged is forwarded to the next leader', async () => {
    const { clock, bus, master, election } = await setup();
    election.lead('m1');
    send(master, { name: 'a', spec: {} });
    send(master, { name: 'b', spec: {} });
    election.lead('m3');
    await clock.advance(10);
    assert.deepEqual(forwardedTo(bus, 'm3').map(nameOf), ['a', 'b']);
    await stop(master, clock);
  });

  test('with no leader known a request is parked, and goes to the leader once one is known, oldest first', async () => {
    const { clock, bus, master, election } = await setup();
    const r1 = send(master, { name: 'a', spec: {} });
    await clock.advance(1000);
    send(master, { name: 'b', spec: {} });
    await clock.advance(1000);
    assert.equal(bus.published.filter((m) => m.subject.startsWith('master.leader.')).length, 0, 'nowhere to go yet');
    election.lead('m1');
    assert.deepEqual(forwardedTo(bus, 'm1').map(nameOf), ['a', 'b']);
    await clock.advance(PARK_MS * 2);
    assert.deepEqual(answers(bus, r1), [], 'a request that found its leader is not answered by the master');
    await stop(master, clock);
  });

  test('a request parked past the park time is answered NO_LEADER, and never forwarded later', async () => {
    const { clock, bus, master, election, errors } = await setup();
    const reply = send(master, { name: 'a', spec: {} });
    await clock.advance(PARK_MS - 100);
    assert.deepEqual(answers(bus, reply), [], 'still waiting');
    await clock.advance(200);
    assert.deepEqual(answers(bus, reply).map((a) => [a.ok, a.error?.code]), [[false, 'NO_LEADER']]);
    assert.deepEqual(errors.map((e) => e.subject), [ClientSubject.add]);
    election.lead('m1');
    assert.equal(forwardedTo(bus, 'm1').length, 0);
    await stop(master, clock);
  });

  test('a master that cannot reach etcd says so: UNAVAILABLE, not NO_LEADER', async () => {
    const { clock, bus, master, election } = await setup();
    election.storeReachable = false;
    const reply = send(master, { name: 'a', spec: {} });
    await clock.advance(PARK_MS + 100);
    assert.deepEqual(answers(bus, reply).map((a) => a.error?.code), ['UNAVAILABLE']);
    await stop(master, clock);
  });

  test('a malformed request is answered BAD_REQUEST and counted; one with a foreign reply subject is not answered at all', async () => {
    const { clock, bus, master, election, errors } = await setup();
    election.lead('m1');
    const reply = send(master, { spec: {} });
    send(master, { name: 'a', spec: {} }, { reply: 'somebody.else' });
    await clock.advance(10);
    assert.deepEqual(answers(bus, reply).map((a) => a.error?.code), ['BAD_REQUEST']);
    assert.equal(bus.on('somebody.else').length, 0);
    assert.equal(errors.length, 2);
    assert.equal(forwardedTo(bus, 'm1').length, 0);
    await stop(master, clock);
  });

  test('a master that wins the election answers the parked requests from its own leader', async () => {
    const { clock, bus, store, master, election } = await setup();
    const lease = await store.grantLease(60);
    const key = keys.candidate(lease);
    await store.txn(undefined, [{ put: key, value: Buffer.from('m2'), lease }]);
    const wl = await store.grantLease(60);
    await store.txn(undefined, [{ put: keys.worker('w1'), value: packed.encode({ id: 'w1', capacity: 10, fenceMs: 1200, kinds: ['noop'] }), lease: wl }]);
    const reply = send(master, { name: 'a', spec: {} });
    election.lead('m2', { key, createRevision: store.kv.get(key)!.createRevision });
    await clock.advance(50);
    assert.deepEqual(answers(bus, reply).map((a) => a.ok), [true]);
    assert.equal(bus.published.filter((m) => m.subject.startsWith('master.leader.')).length, 0, 'nothing forwarded');
    assert.ok(store.kv.has(keys.resource('a')), 'written by our leader');
    await stop(master, clock);
    assert.ok(election.resigned, 'stop resigns');
    assert.equal(bus.on(subjects.event('leader.resigned')).length, 1, 'and says so');
  });
  test('a leader whose commit failed hands over to the next candidate, and its request goes to the next leader unanswered', async () => {
    const { clock, bus, store, master, election } = await setup({ handOver: { resources: 0, afterMs: 0 } });
    const lease = await store.grantLease(60);
    const key = keys.candidate(lease);
    await store.txn(undefined, [{ put: key, value: Buffer.from('m2'), lease }]);
    const wl = await store.grantLease(60);
    await store.txn(undefined, [{ put: keys.worker('w1'), value: packed.encode({ id: 'w1', capacity: 10, fenceMs: 1200, kinds: ['noop'] }), lease: wl }]);
    election.lead('m2', { key, createRevision: store.kv.get(key)!.createRevision });
    election.members = ['m2', 'm1'];
    await clock.advance(50);
    store.txnHook = async (ops) => {
      if (ops.some((op) => 'put' in op && op.put === keys.resource('a'))) throw new Error('etcd: request timed out');
    };
    const reply = send(master, { name: 'a', spec: {} });
    await clock.advance(50);
    assert.deepEqual(election.handOvers.length, 1, 'handed over');
    assert.equal(answers(bus, reply).length, 0, 'not answered: the next leader answers it');
    election.lead('m1');
    await clock.advance(50);
    assert.deepEqual(forwardedTo(bus, 'm1').map(nameOf), ['a'], 'forwarded to the next leader');
    await stop(master, clock);
  });
});
