// The leader's shell drives schedules with nothing but its injected clock:
// with no request coming, it wakes at the next fire time, commits the run
// with the fire time in the record, and announces it; a leader that loads
// that record afterwards does not fire the same time again.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Leader } from '#actors/leader/leader.js';
import { MAX_WAIT_MS, WakeTimer } from '#actors/leader/wake-timer.js';
import { keys } from '#protocol/keys.js';
import { json, packed } from '#protocol/codec.js';
import { decodeRecord } from '#protocol/stored.js';
import { createMetrics } from '#platform/metrics.js';
import { answerPing, Prober } from '#platform/nats/prober.js';
import { subjects } from '#protocol/subjects.js';
import { logger } from '#platform/log.js';
import { FakeClock } from '../fakes/clock.js';
import { MemStore } from '../fakes/store.js';
import { MemBus } from '../fakes/bus.js';
import { request } from '../fakes/requests.js';

async function leaderOn(clock: FakeClock, store: MemStore, bus: MemBus, id: string): Promise<Leader> {
  const lease = await store.grantLease(60);
  const electionKey = keys.candidate(lease);
  await store.txn(undefined, [{ put: electionKey, value: Buffer.from(id), lease }]);
  const leader = new Leader({
    storeReachable: () => true,
    bus, store, clock, id,
    guard: { key: electionKey, createRevision: store.kv.get(electionKey)!.createRevision },
    members: () => [id],
    onFenceLost: () => undefined,
    onRejected: () => undefined,
    log: logger(),
    metrics: createMetrics({ defaultMetrics: false }),
    prober: new Prober(bus, { intervalMs: 100_000, misses: 2, stableMs: 0 }, clock),
  });
  await leader.start();
  return leader;
}

const fired = (bus: MemBus) =>
  bus.published.filter((m) => m.subject === 'events.schedule.fired').map((m) => json.decode(m.data) as { run: number; fireTime: string });

test('with no request coming, the leader wakes at the fire time, commits the run with it, and a later leader does not fire it again', async () => {
  const clock = new FakeClock();
  const store = new MemStore(clock);
  const bus = new MemBus(clock);
  const wl = await store.grantLease(600);
  await store.txn(undefined, [{ put: keys.worker('w1'), value: packed.encode({ id: 'w1', capacity: 10, fenceMs: 1200, kinds: ['noop'] }), lease: wl }]);
  // The worker answers the leader's liveness probes.
  bus.subscribe(subjects.workerStatus('w1'), (m) => answerPing(bus, m));
  const first = await leaderOn(clock, store, bus, 'm1');
  await clock.advance(10);
  first.submit(request({ op: 'add', name: 'tick', spec: { schedule: { every: '10s' } } }));
  await clock.advance(10);
  // The fake wall clock starts at a whole 10 s; the first fire is 10 s after it.
  const fireAt = clock.wallOrigin + 10_000;
  await clock.advance(fireAt - clock.wall() - 5);
  assert.deepEqual(fired(bus), [], 'nothing fires early');
  await clock.advance(100);
  assert.deepEqual(fired(bus).map((e) => [e.run, e.fireTime]), [[1, new Date(fireAt).toISOString()]]);
  const rec = decodeRecord(store.kv.get(keys.resource('tick'))!.value).rec;
  assert.equal(rec.sched?.through, fireAt, 'the fire time is in the committed record');
  assert.equal(rec.sched?.current?.run, 1);
  assert.equal(rec.worker, 'w1', JSON.stringify(rec));
  assert.ok(store.kv.has(keys.assignment('w1', 'tick')), 'with the run\'s assignment');
  await first.stop();

  // A new leader loads the record a moment later: the fire is done, and the next one is its own.
  const second = await leaderOn(clock, store, bus, 'm2');
  await clock.advance(2_000);
  assert.equal(fired(bus).length, 1, 'the committed fire is not fired again');
  await clock.advance(10_000);
  // Run 1 still runs (noop), so the next leader's own fire is skipped, and says so.
  const skipped = bus.published.filter((m) => m.subject === 'events.schedule.skipped').map((m) => json.decode(m.data) as { fireTime: string; why: string; by: string });
  assert.deepEqual(skipped.map((e) => [e.fireTime, e.why, e.by]), [[new Date(fireAt + 10_000).toISOString(), 'overlap: run 1 is still going', 'm2']]);
  await second.stop();
});

test('a fire months away is waited for in steps of at most an hour, not by one timer Node would run at once', async () => {
  const clock = new FakeClock();
  const woken: number[] = [];
  const t = new WakeTimer(clock, () => woken.push(clock.wall()));
  const far = clock.wall() + 40 * 86_400_000;
  t.set(far);
  await clock.advance(MAX_WAIT_MS - 1);
  assert.deepEqual(woken, []);
  await clock.advance(1);
  assert.equal(woken.length, 1, 'woken after an hour, to plan and set the timer again');
  t.set(clock.wall() + 500);
  t.set(clock.wall() + 500);
  await clock.advance(500);
  assert.equal(woken.length, 2, 'one wake for a time set twice');
  t.set(clock.wall() + 500);
  t.cancel();
  await clock.advance(1000);
  assert.equal(woken.length, 2);
});
