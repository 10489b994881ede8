// Attempts: an attempt stopped while it waits out its start delay never runs,
// and says it stopped (a handoff waits for that), unless a fence stopped it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Attempts } from '#actors/worker/runtime/attempts.js';
import { Reporter } from '#actors/worker/runtime/reporter.js';
import { ContentType, decodeRequest } from '#protocol/codec.js';
import { WorkerSubject } from '#protocol/subjects.js';
import { respond } from '#platform/nats/bus.js';
import { logger } from '#platform/log.js';
import type { ReportRequest } from '#protocol/messages.js';
import { FakeClock, settle } from '../fakes/clock.js';
import { MemBus } from '../fakes/bus.js';
import { MemStore } from '../fakes/store.js';

function setup() {
  const clock = new FakeClock();
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
      return undefined;
    },
    reporter: new Reporter(bus, clock, 'w1', logger()),
    results: { emit: async () => undefined },
    store: new MemStore(clock),
    bus,
    clock,
    log: logger(),
    epoch: () => 'L1',
    mayStart: () => true,
    leaseHeld: () => true,
    onCountChange: () => undefined,
  });
  const task = { name: 'a', id: 'id-a', worker: 'w1', spec: {}, createdAt: '', revision: 5, attempt: 2, delayMs: 850 };
  return { clock, tasks, reports, task, launched: () => launched };
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
