// Attempts: an attempt stopped while it waits out its start delay never runs,
// and says it stopped (a handoff waits for that), unless a fence stopped it;
// an attempt a fence stopped and the restored lease starts again resumes
// from its checkpoint and reports above what its earlier run said.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Attempts } from '#actors/worker/runtime/attempts.js';
import { Reporter } from '#actors/worker/runtime/reporter.js';
import { ContentType, decodeRequest, packed } from '#protocol/codec.js';
import { keys } from '#protocol/keys.js';
import type { TaskHost, TaskStart, TaskCallbacks } from '#actors/worker/runtime/host.js';
import { WorkerSubject } from '#protocol/subjects.js';
import { respond } from '#platform/nats/bus.js';
import { logger } from '#platform/log.js';
import type { ReportRequest } from '#protocol/messages.js';
import { FakeClock, settle } from '../fakes/clock.js';
import { MemBus } from '../fakes/bus.js';
import { MemStore } from '../fakes/store.js';

function setup(host?: TaskHost) {
  const clock = new FakeClock();
  const store = new MemStore(clock);
  const bus = new MemBus(clock);
  const reports: ReportRequest['reports'] = [];
  bus.subscribe(WorkerSubject.report, (msg) => {
    const req = decodeRequest(msg.data, ContentType.msgpack) as ReportRequest;
    reports.push(...req.reports);
    respond(bus, msg.reply, ContentType.msgpack, { ok: true, results: req.reports.map(() => ({ ok: true })) });
  });
  let launched = 0;
  const tasks = new Attempts({
    worker: 'w1',
    hostFor: () => {
      launched++;
      return host;
    },
    reporter: new Reporter(bus, clock, 'w1', logger()),
    results: { emit: async () => undefined },
    store,
    bus,
    clock,
    log: logger(),
    epoch: () => 'L1',
    mayStart: () => true,
    leaseHeld: () => true,
    onCountChange: () => undefined,
  });
  const task = { name: 'a', id: 'id-a', worker: 'w1', spec: {}, createdAt: '', revision: 5, attempt: 2, delayMs: 850 };
  return { clock, tasks, reports, task, store, launched: () => launched };
}

test('an attempt stopped while it waits out its delay never runs, and reports it stopped', async () => {
  const { clock, tasks, reports, task, launched } = setup();
  tasks.start(task);
  await clock.advance(100);
  await tasks.stop('a', 'unassigned', 2000);
  await clock.advance(2000);
  await settle();
  assert.equal(launched(), 0, 'never launched');
  assert.deepEqual(reports, [{ type: 'stopped', name: 'a', id: 'id-a', attempt: 2 }]);
  tasks.close();
});

test('a fence stops a waiting attempt without a report', async () => {
  const { clock, tasks, reports, task, launched } = setup();
  tasks.start(task);
  await tasks.stop('a', 'fenced', 0);
  await clock.advance(2000);
  await settle();
  assert.equal(launched(), 0);
  assert.deepEqual(reports, []);
  tasks.close();
});

test('an attempt a fence stopped and the same lease starts again resumes from the checkpoint written since its assignment, and its reports go on above the earlier run\'s seqs', async () => {
  const runs: Array<{ start: TaskStart; cb: TaskCallbacks }> = [];
  const host: TaskHost = {
    start(start, cb) {
      runs.push({ start, cb });
      return { done: new Promise(() => undefined), stop: async () => ({ kind: 'stopped', forced: true }) };
    },
  };
  const { clock, tasks, reports, store } = setup(host);
  // Assigned before any checkpoint existed: the assignment does not say there is one.
  const task = { name: 'a', id: 'id-a', worker: 'w1', spec: {}, createdAt: '', revision: 5, attempt: 1 };
  tasks.start(task);
  await settle();
  assert.equal(runs.length, 1);
  void runs[0]!.cb.checkpoint({ pages: 40 });
  await clock.advance(100);
  await settle();
  const first = reports.find((r) => r.type === 'checkpoint')!;
  // What the leader writes for it.
  await store.txn(undefined, [{ put: keys.checkpoint('a'), value: packed.encode({ id: 'id-a', attempt: 1, seq: (first as { seq: number }).seq, worker: 'w1', state: { pages: 40 }, at: '' }) }]);
  await tasks.stop('a', 'fenced: keepalive overdue', 0);
  tasks.start(task);
  await settle();
  await clock.advance(10);
  await settle();
  assert.equal(runs.length, 2, 'started again');
  assert.deepEqual(runs[1]!.start.checkpointed, { pages: 40 }, 'resumed from its checkpoint, not from nothing');
  assert.equal(runs[1]!.start.rerun, true, 'and told it ran before (a crawl shard then waits one politeness interval)');
  assert.equal(runs[0]!.start.rerun, undefined);
  void runs[1]!.cb.checkpoint({ pages: 55 });
  await clock.advance(100);
  await settle();
  const seqs = reports.filter((r) => r.type === 'checkpoint').map((r) => (r as { seq: number }).seq);
  assert.equal(seqs.length, 2);
  assert.ok(seqs[1]! > seqs[0]!, `the second run's checkpoint seq ${seqs[1]} is above the first's ${seqs[0]} (the leader drops it otherwise)`);
  // A different attempt of the name is a fresh start: it reads a checkpoint only if its assignment says so.
  await tasks.stop('a', 'fenced', 0);
  tasks.start({ ...task, attempt: 2 });
  await settle();
  assert.equal(runs[2]!.start.checkpointed, undefined);
  tasks.close();
});
