// The task runtime against real processes: plugin kinds that complete, fail
// and restart with backoff, move to another worker when rescheduled, are
// stopped by force when they spin or ignore their signal (while the worker
// keeps its lease), unknown kinds that wait for a worker that runs them, and
// checkpoints refused from an incarnation that no longer owns the attempt.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { headers as natsHeaders } from 'nats';
import { cluster, rawConnect, Recorder, waitFor } from '../harness.js';
import { EtcdStore } from '#platform/etcd/store.js';
import { keys } from '#protocol/keys.js';
import { json, packed } from '#protocol/codec.js';
import { WorkerSubject } from '#protocol/subjects.js';
import type { Resource } from '#protocol/messages.js';
import type { GafferClient } from '#client/client.js';

const EXAMPLES = fileURLToPath(new URL('../../../examples/kinds.mjs', import.meta.url));
const BAD = fileURLToPath(new URL('../../../test/fixtures/kinds/bad.mjs', import.meta.url));

type Ev = Record<string, any>;

async function settled(client: GafferClient, name: string, states: string[], timeoutMs = 30000): Promise<Resource> {
  return waitFor(`${name} to be ${states.join(' or ')}`, async () => {
    const r = await client.get(name);
    return states.includes(r.state) ? r : undefined;
  }, timeoutMs);
}

test('task runtime: plugin kinds, lifecycle, restarts, reschedule', async (t) => {
  const c = await cluster({ masters: 2, workers: 0, ttlSeconds: 2 });
  for (const id of ['w1', 'w2', 'w3']) c.startWorker(id, ['--tasks', EXAMPLES, '--stop-grace-ms', '500']);
  await c.ready(3);
  const client = await c.client();
  const events = await Recorder.start<Ev>(c.natsUrl, 'events.task.>');

  await t.test('workers advertise the kinds they run', async () => {
    const s = await client.status();
    for (const w of s.workers) assert.deepEqual(w.kinds, ['countdown', 'crawl', 'doomed', 'flaky', 'noop']);
  });

  await t.test('a plugin kind completes with its result; the results stream holds each item once', async () => {
    await client.add('count', { kind: 'countdown', from: 5, stepMs: 20 });
    const r = await settled(client, 'count', ['completed']);
    assert.deepEqual(r.result, { counted: 5, attempt: 1 });
    assert.equal(r.worker, null, 'a completed resource holds no worker');
    assert.equal(r.failures, 0);
    await waitFor('task.completed', async () => events.items.some((e) => e.data.kind === 'task.completed' && e.data.name === 'count'));
    const nc = await rawConnect(c.natsUrl);
    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info('GAFFER_RESULTS', { subjects_filter: 'results.count' });
    assert.equal(info.state.subjects?.['results.count'], 5);
  });

  await t.test('a kind that fails twice and then succeeds ends completed with failures 2; backoff in the events', async () => {
    await client.add('flaky', { kind: 'flaky', failures: 2, restart: { attempts: 3, delayMs: 200, maxDelayMs: 5000 } });
    const r = await settled(client, 'flaky', ['completed', 'failed']);
    assert.equal(r.state, 'completed');
    assert.equal(r.failures, 2);
    assert.deepEqual(r.result, { succeededOnAttempt: 3 });
    const restarting = events.items.filter((e) => e.data.kind === 'task.restarting' && e.data.name === 'flaky').map((e) => e.data);
    assert.equal(restarting.length, 2);
    assert.ok(restarting[0]!.delayMs >= 150 && restarting[0]!.delayMs <= 200, `first backoff ${restarting[0]!.delayMs}`);
    assert.ok(restarting[1]!.delayMs >= 300 && restarting[1]!.delayMs <= 400, `doubled: ${restarting[1]!.delayMs}`);
    const failed = events.items.filter((e) => e.data.kind === 'task.failed' && e.data.name === 'flaky').map((e) => e.data);
    assert.deepEqual(failed.map((f) => f.failures), [1, 2]);
    assert.match(failed[0]!.error, /attempt 1 fails on purpose/);
  });

  await t.test('a kind that always fails ends failed after its attempts, and a later attempt ran on another worker', async () => {
    await client.add('doomed', { kind: 'doomed', restart: { attempts: 3, delayMs: 50 } });
    const r = await settled(client, 'doomed', ['failed']);
    assert.equal(r.failures, 3);
    assert.equal(r.attempt, 3);
    assert.match(r.error ?? '', /doomed \(attempt 3\)/);
    const ranOn = new Set(events.items.filter((e) => e.data.kind === 'task.failed' && e.data.name === 'doomed').map((e) => e.data.worker as string));
    assert.ok(ranOn.size >= 2, `attempts ran on ${[...ranOn].join(', ')}`);
  });

  await t.test('resource.restart runs a failed resource again, failures reset', async () => {
    const before = await client.get('doomed');
    const r = await client.restart('doomed');
    assert.equal(r.failures, 0);
    assert.ok(r.attempt > before.attempt);
    await settled(client, 'doomed', ['failed']);
    await assert.rejects(client.restart('nope'), (e: { code?: string }) => e.code === 'NOT_FOUND');
    await client.add('forever');
    await assert.rejects(client.restart('forever'), (e: { code?: string }) => e.code === 'CONFLICT');
  });

  await t.test('an unknown kind stays pending with a reason, then runs when a worker with that kind joins', async () => {
    await client.add('needs-bad', { kind: 'throws', restart: { attempts: 1 } });
    const pending = await client.get('needs-bad');
    assert.equal(pending.state, 'pending');
    assert.equal(pending.reason, 'no live worker runs kind throws');
    c.startWorker('w4', ['--tasks', BAD]);
    const r = await settled(client, 'needs-bad', ['failed']);
    assert.equal(r.failures, 1);
    assert.match(r.error ?? '', /boom/);
    const ran = events.items.find((e) => e.data.kind === 'task.started' && e.data.name === 'needs-bad');
    assert.equal(ran?.data.worker, 'w4');
  });
});

test('task runtime: spinning and deaf tasks are stopped by force while the worker keeps its lease', async () => {
  const c = await cluster({ masters: 1, workers: 0, ttlSeconds: 2 });
  c.startWorker('w1', ['--tasks', BAD, '--stop-grace-ms', '300']);
  await c.ready(1);
  const client = await c.client();
  const stopped = await Recorder.start<Ev>(c.natsUrl, 'events.task.stopped');
  const store = await EtcdStore.connect(c.etcdEndpoints.split(','), { timeoutMs: 3000 });
  try {
    const leaseOf = async () => (await store.range(keys.worker('w1'))).kvs[0]?.lease;
    const lease = await leaseOf();
    assert.ok(lease);
    for (const kind of ['spin', 'deaf']) {
      await client.add(kind, { kind });
      await settled(client, kind, ['running']);
    }
    // Let the spinning thread spin through several keepalive intervals.
    const status = await client.workerStatus('w1');
    assert.deepEqual(status.running.sort(), ['deaf', 'spin']);
    await client.delete('spin');
    await client.delete('deaf');
    await waitFor('both stopped', async () => ['spin', 'deaf'].every((n) => stopped.items.some((e) => e.data.name === n)));
    for (const n of ['spin', 'deaf']) {
      const ev = stopped.items.find((e) => e.data.name === n)!.data;
      assert.match(ev.reason, /\(forced\)$/, `${n}: ${ev.reason}`);
    }
    assert.equal(await leaseOf(), lease, 'the same lease: the worker never lost it');
    const log = readFileSync(join(c.dir, 'w1.log'), 'utf8');
    assert.doesNotMatch(log, /fencing: stopping every task/);
    assert.match(log, /stopped by force/);
    assert.deepEqual((await client.workerStatus('w1')).running, []);
  } finally {
    store.close();
  }
});

test('task runtime: a report or checkpoint from an old incarnation is refused', async () => {
  const c = await cluster({ masters: 1, workers: 0, ttlSeconds: 2 });
  c.startWorker('w1', ['--tasks', EXAMPLES]);
  await c.ready(1);
  const client = await c.client();
  await client.add('cd', { kind: 'countdown', from: 1000, stepMs: 50 });
  const r = await settled(client, 'cd', ['running']);
  const store = await EtcdStore.connect(c.etcdEndpoints.split(','), { timeoutMs: 3000 });
  try {
    const lease = (await store.range(keys.worker('w1'))).kvs[0]!.lease;
    await waitFor('a checkpoint', async () => (await store.range(keys.checkpoint('cd'))).kvs.length > 0);
    const nc = await rawConnect(c.natsUrl);
    const send = async (epoch: string, attempt: number) => {
      const h = natsHeaders();
      h.set('Gaffer-Request-Id', `t-${epoch}-${attempt}`);
      const body = { worker: 'w1', epoch, reports: [{ type: 'checkpoint', name: 'cd', id: r.id, attempt, seq: 1_000_000, state: { next: 999_999 } }] };
      const m = await nc.request(WorkerSubject.report, json.encode(body), { timeout: 5000, headers: h });
      return json.decode(m.data) as { ok: boolean; results: Array<{ ok: boolean; error?: { code: string } }> };
    };
    const stale = await send('12345', r.attempt);
    assert.equal(stale.results[0]!.error?.code, 'NOT_OWNER', 'another incarnation');
    const old = await send(lease, r.attempt + 1);
    assert.equal(old.results[0]!.error?.code, 'NOT_OWNER', 'another attempt');
    const cp = packed.decode((await store.range(keys.checkpoint('cd'))).kvs[0]!.value) as { seq: number; state: { next: number } };
    assert.notEqual(cp.seq, 1_000_000, 'the refused checkpoint was not written');
    assert.ok(cp.state.next < 1000);
  } finally {
    store.close();
  }
});

test('task runtime: a worker paused past its fence stops its task threads before it registers again', async () => {
  // Threads that take up to 300 ms to die even when terminated: a register
  // that did not wait for the fence's stops would come before them.
  const c = await cluster({ masters: 1, workers: 0, ttlSeconds: 2 });
  c.startWorker('w1', ['--tasks', BAD]);
  await c.ready(1);
  const client = await c.client();
  const names = ['p1', 'p2', 'p3'];
  for (const n of names) await client.add(n, { kind: 'stubborn', rebalance: false });
  for (const n of names) await settled(client, n, ['running']);
  c.startWorker('w2', ['--tasks', BAD]);
  await c.ready(2);
  const w1 = c.workers.get('w1')!;
  w1.pause();
  try {
    await waitFor('its tasks to run on w2', async () => (await client.list()).filter((r) => names.includes(r.name) && r.worker === 'w2' && r.state === 'running').length === 3, 20_000);
  } finally {
    w1.resume();
  }
  type Line = { msg: string; name?: string; reason?: string };
  const lines = () => readFileSync(join(c.dir, 'w1.log'), 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
  await waitFor('w1 to register again', async () => lines().filter((l) => l.msg === 'worker registered').length >= 2, 20_000);
  const log = lines();
  const again = log.findIndex((l, i) => l.msg === 'worker registered' && log.slice(0, i).some((x) => x.msg === 'worker registered'));
  for (const n of names) {
    const stop = log.findIndex((l) => l.msg === 'task stopped' && l.name === n && (l.reason ?? '').startsWith('fenced'));
    assert.ok(stop >= 0, `${n} was stopped by the fence`);
    assert.ok(stop < again, `${n}'s thread stopped (line ${stop}) before w1 registered again (line ${again})`);
  }
});
