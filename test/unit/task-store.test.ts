// ctx.store through the worker's Attempts: keys go to the sink under the
// resource id, values round-trip, a bad key or a non-JSON value is refused
// before anything is sent, and writes are fenced like emits: once the lease
// is gone, or the attempt stopped, the kind's calls are refused and nothing
// reaches the store.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Json, TaskContext } from '#kinds/api.js';
import { Attempts, type TaskStateSink } from '#actors/worker/runtime/attempts.js';
import { InlineHost } from '#actors/worker/runtime/inline-host.js';
import { Reporter } from '#actors/worker/runtime/reporter.js';
import { ContentType, decodeRequest } from '#protocol/codec.js';
import { WorkerSubject } from '#protocol/subjects.js';
import { respond } from '#platform/nats/bus.js';
import { logger } from '#platform/log.js';
import { NotOwnerError } from '#protocol/errors.js';
import { StoreKeyError } from '#protocol/task-state.js';
import type { ReportRequest } from '#protocol/messages.js';
import { FakeClock, settle } from '../fakes/clock.js';
import { MemBus } from '../fakes/bus.js';
import { MemStore } from '../fakes/store.js';

class MapSink implements TaskStateSink {
  readonly map = new Map<string, Json>();
  async get(resourceId: string, key: string): Promise<Json | undefined> {
    return this.map.get(`${resourceId}/${key}`);
  }
  async put(resourceId: string, key: string, value: Json): Promise<void> {
    this.map.set(`${resourceId}/${key}`, value);
  }
  async delete(resourceId: string, key: string): Promise<void> {
    this.map.delete(`${resourceId}/${key}`);
  }
}

function setup() {
  const clock = new FakeClock();
  const bus = new MemBus(clock);
  bus.subscribe(WorkerSubject.report, (msg) => {
    const req = decodeRequest(msg.data, ContentType.msgpack) as ReportRequest;
    respond(bus, msg.reply, ContentType.msgpack, { ok: true, results: req.reports.map(() => ({ ok: true })) });
  });
  const sink = new MapSink();
  let ctx: TaskContext | undefined;
  let release: () => void = () => undefined;
  const host = new InlineHost({
    run: async (c) => {
      ctx = c;
      await new Promise<void>((resolve) => {
        release = resolve;
        c.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    },
  });
  const lease = { held: true };
  const tasks = new Attempts({
    worker: 'w1',
    hostFor: () => host,
    reporter: new Reporter(bus, clock, 'w1', logger()),
    results: { emit: async () => undefined },
    taskState: sink,
    store: new MemStore(clock),
    bus,
    clock,
    log: logger(),
    epoch: () => 'L1',
    mayStart: () => lease.held,
    leaseHeld: () => lease.held,
    onCountChange: () => undefined,
  });
  tasks.start({ name: 'a', id: 'id-a', worker: 'w1', spec: {}, createdAt: '', revision: 5, attempt: 1 });
  return { tasks, sink, lease, clock, ctx: () => ctx, release: () => release() };
}

test('ctx.store: values round-trip under the resource id; bad keys and values are refused before they are sent', async () => {
  const { tasks, sink, ctx, release } = setup();
  await settle();
  const store = ctx()!.store!;
  assert.equal(await store.get('page.00ff'), undefined);
  await store.put('page.00ff', { e: '"v1"', l: 'x' });
  assert.deepEqual(await store.get('page.00ff'), { e: '"v1"', l: 'x' });
  assert.deepEqual([...sink.map.keys()], ['id-a/page.00ff']);
  await store.delete('page.00ff');
  assert.equal(await store.get('page.00ff'), undefined);
  for (const key of ['', 'a.*', 'a..b', 'a b', 'x'.repeat(201), '$KV']) await assert.rejects(store.put(key, 1), StoreKeyError, JSON.stringify(key));
  await assert.rejects(store.put('k', { f: () => 1 } as unknown as Json), /stored value is not JSON/);
  assert.equal(sink.map.size, 0);
  release();
  tasks.close();
});

test('ctx.store is fenced: no write once the lease is gone, nor once the attempt stopped', async () => {
  const { tasks, sink, lease, ctx } = setup();
  await settle();
  const store = ctx()!.store!;
  await store.put('k', 1);
  lease.held = false;
  await assert.rejects(store.put('k', 2), NotOwnerError);
  await assert.rejects(store.delete('k'), NotOwnerError);
  await assert.rejects(store.get('k'), NotOwnerError);
  assert.deepEqual([...sink.map.entries()], [['id-a/k', 1]]);
  lease.held = true;
  await tasks.stop('a', 'unassigned', 1000);
  await assert.rejects(store.put('k', 3), /refused|no longer runs/);
  assert.deepEqual([...sink.map.entries()], [['id-a/k', 1]], 'a stopped attempt wrote nothing');
  tasks.close();
});
