// The worker's own rules on in-memory ports: it registers under its own
// lease, runs what etcd and the assign events give its incarnation, resyncs
// after a leader change, and fences itself (stops every attempt, starts
// nothing) when its lease can no longer be trusted: keepalives overdue, or
// resumed after a stall past the lease's deadline.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { resyncSpreadMs, Worker } from '#actors/worker/worker.js';
import { KindRegistry } from '#actors/worker/runtime/kind-modules.js';
import { InlineHost } from '#actors/worker/runtime/inline-host.js';
import { keys } from '#protocol/keys.js';
import { ContentType, decodeRequest, json, packed } from '#protocol/codec.js';
import { subjects, WorkerSubject } from '#protocol/subjects.js';
import { decodeWorkerInfo, type StoredAssignment } from '#protocol/stored.js';
import type { AssignEvent, ReportRequest } from '#protocol/messages.js';
import type { TaskKind } from '#kinds/api.js';
import { fencingTiming } from '#platform/etcd/lease.js';
import { respond } from '#platform/nats/bus.js';
import { createMetrics } from '#platform/metrics.js';
import { logger } from '#platform/log.js';
import { FakeClock, settle } from '../fakes/clock.js';
import { MemBus } from '../fakes/bus.js';
import { MemStore } from '../fakes/store.js';

const TTL_SECONDS = 5;
const VALIDITY_MS = fencingTiming(TTL_SECONDS).validityMs;

/** A kind that records its starts and stops, and runs until stopped. */
function recorder(log: string[]): TaskKind {
  return {
    run: (ctx) =>
      new Promise<void>((resolve) => {
        log.push(`start ${ctx.resource.name}`);
        ctx.signal.addEventListener('abort', () => (log.push(`stop ${ctx.resource.name}`), resolve()), { once: true });
      }),
  };
}

async function setup(opts: { random?: () => number } = {}) {
  const clock = new FakeClock();
  const bus = new MemBus(clock);
  const store = new MemStore(clock);
  const ran: string[] = [];
  const reports: ReportRequest['reports'] = [];
  // The leader's side of task.report: accept everything.
  bus.subscribe(WorkerSubject.report, (msg) => {
    const req = decodeRequest(msg.data, ContentType.msgpack) as ReportRequest;
    reports.push(...req.reports);
    respond(bus, msg.reply, ContentType.msgpack, { ok: true, results: req.reports.map(() => ({ ok: true })) });
  });
  const worker = new Worker({
    id: 'w1',
    capacity: 10,
    labels: { zone: 'eu' },
    ttlSeconds: TTL_SECONDS,
    stopGraceMs: 100,
    bus,
    store,
    clock,
    log: logger(),
    metrics: createMetrics({ defaultMetrics: false }),
    random: opts.random ?? (() => 0.5),
    kinds: new KindRegistry([], [{ name: 'noop', host: new InlineHost(recorder(ran)) }]),
    results: { emit: async () => undefined },
  });
  await worker.start();
  const epoch = store.kv.get(keys.worker('w1'))!.lease;
  return { clock, bus, store, worker, ran, reports, epoch };
}

const assignment = (name: string, epoch: string, attempt = 1): StoredAssignment => ({
  name,
  id: `id-${name}`,
  worker: 'w1',
  spec: {},
  createdAt: '',
  attempt,
  epoch,
  term: 1,
});

/** assign writes an assignment to etcd (as the leader does) and publishes its event, unless told not to. */
async function assign(store: MemStore, bus: MemBus, a: StoredAssignment, opts: { publish?: boolean } = {}): Promise<void> {
  const revision = await store.txn(undefined, [{ put: keys.assignment('w1', a.name), value: packed.encode(a) }]);
  if (opts.publish === false) return;
  const ev: AssignEvent = { type: 'put', resource: { ...a, revision }, revision, epoch: a.epoch };
  bus.publish(subjects.workerAssign('w1'), json.encode(ev));
}

const running = (worker: Worker) => worker.status().running;

describe('Worker', () => {
  test('registers under its own lease, advertising its kinds, capacity, labels and fence window', async () => {
    const { store, worker } = await setup();
    const kv = store.kv.get(keys.worker('w1'));
    assert.ok(kv && store.hasLease(kv.lease), 'bound to a live lease');
    assert.deepEqual(decodeWorkerInfo(kv.value), { id: 'w1', capacity: 10, fenceMs: VALIDITY_MS, kinds: ['noop'], labels: { zone: 'eu' } });
    await worker.stop();
    assert.equal(store.kv.has(keys.worker('w1')), false, 'stop deregisters');
  });

  test('runs what is assigned to its incarnation, from events and from etcd, and nothing assigned to another', async () => {
    const { clock, bus, store, worker, epoch } = await setup();
    await assign(store, bus, assignment('a', epoch));
    await assign(store, bus, assignment('old', 'some-earlier-lease'));
    await clock.advance(10);
    assert.deepEqual(running(worker), ['a']);
    // Written while the event was lost: a new leader makes every worker read etcd again.
    await assign(store, bus, assignment('b', epoch), { publish: false });
    bus.publish(subjects.event('leader.elected'), json.encode({}));
    await clock.advance(1000);
    assert.deepEqual(running(worker), ['a', 'b']);
    await worker.stop();
  });

  test('an unassigned resource stops', async () => {
    const { clock, bus, store, worker, ran, epoch } = await setup();
    await assign(store, bus, assignment('a', epoch));
    await clock.advance(10);
    const revision = await store.txn(undefined, [{ del: keys.assignment('w1', 'a') }]);
    const ev: AssignEvent = { type: 'delete', resource: { ...assignment('a', epoch), revision }, revision, epoch };
    bus.publish(subjects.workerAssign('w1'), json.encode(ev));
    await clock.advance(200);
    assert.deepEqual(running(worker), []);
    assert.deepEqual(ran, ['start a', 'stop a']);
    await worker.stop();
  });

  test('keepalives overdue: it stops every attempt within its fence window, before the lease can expire, and starts nothing', async () => {
    const { clock, bus, store, worker, ran, epoch } = await setup();
    await assign(store, bus, assignment('a', epoch));
    await clock.advance(10);
    assert.deepEqual(running(worker), ['a']);
    store.keepAliveHook = () => new Promise<number>(() => undefined); // etcd stops answering
    await clock.advance(VALIDITY_MS + 10);
    assert.ok(store.hasLease(epoch), 'the server still holds the lease');
    assert.deepEqual(running(worker), [], 'fenced');
    assert.deepEqual(ran, ['start a', 'stop a']);
    await assign(store, bus, assignment('b', epoch));
    await clock.advance(10);
    assert.deepEqual(running(worker), [], 'nothing starts while fenced');
    await worker.kill();
  });

  test('resumed after a stall past its lease deadline, it fences at once and starts nothing, before any timer runs', async () => {
    const { clock, bus, store, worker, ran, epoch } = await setup();
    await assign(store, bus, assignment('a', epoch));
    await clock.advance(10);
    clock.jump(VALIDITY_MS + 10); // paused: no timer ran meanwhile
    worker.checkLease();
    assert.deepEqual(running(worker), [], 'fenced');
    assert.deepEqual(ran, ['start a', 'stop a']);
    await worker.kill();
  });

  test('an assign event met after a stall past the deadline starts nothing', async () => {
    const { clock, bus, store, worker, ran, epoch } = await setup();
    clock.jump(VALIDITY_MS + 10);
    await assign(store, bus, assignment('a', epoch));
    await settle(); // no timer runs: the fence timer is overdue but has not fired
    assert.deepEqual(ran, [], 'never started');
    await worker.kill();
  });

  test('a resync after a leader change waits a random share of the spread, so a fleet does not read etcd at once', async () => {
    const early = await setup({ random: () => 0 });
    const late = await setup({ random: () => 0.9 });
    for (const s of [early, late]) {
      await assign(s.store, s.bus, assignment('a', s.epoch), { publish: false });
      s.bus.publish(subjects.event('leader.elected'), json.encode({}));
      await s.clock.advance(100);
    }
    assert.deepEqual(running(early.worker), ['a']);
    assert.deepEqual(running(late.worker), [], 'not yet');
    await late.clock.advance(900);
    assert.deepEqual(running(late.worker), ['a']);
    await early.worker.stop();
    await late.worker.stop();
  });

  test('the resync spread grows with the fleet the new leader announces: a thousand workers spread theirs over ten seconds', async () => {
    assert.equal(resyncSpreadMs(0), 1000);
    assert.equal(resyncSpreadMs(1000), 10_000);
    assert.equal(resyncSpreadMs(1e6), 30_000, 'capped');
    const s = await setup({ random: () => 0.5 });
    await assign(s.store, s.bus, assignment('a', s.epoch), { publish: false });
    s.bus.publish(subjects.event('leader.elected'), json.encode({ leader: 'm1', term: 7, workers: 1000 }));
    await s.clock.advance(4_900);
    assert.deepEqual(running(s.worker), [], 'half of ten seconds not yet passed');
    await s.clock.advance(200);
    assert.deepEqual(running(s.worker), ['a']);
    await s.worker.stop();
  });
});
