// Reporter: task reports batched to the leader; a batch refused as malformed
// must not block the reports behind it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Reporter } from '#actors/worker/runtime/reporter.js';
import { ContentType, decodeRequest } from '#protocol/codec.js';
import { WorkerSubject } from '#protocol/subjects.js';
import { validateReportRequest } from '#protocol/validate-report.js';
import { respond, respondError } from '#platform/nats/bus.js';
import { logger } from '#platform/log.js';
import type { TaskReport } from '#protocol/messages.js';
import { FakeClock, settle } from '../fakes/clock.js';
import { MemBus } from '../fakes/bus.js';

/** A leader that validates each request as the real one does and accepts every well-formed report. */
function leader(bus: MemBus): { requests: number } {
  const seen = { requests: 0 };
  bus.subscribe(WorkerSubject.report, (msg) => {
    seen.requests++;
    try {
      const req = validateReportRequest(decodeRequest(msg.data, ContentType.msgpack));
      respond(bus, msg.reply, ContentType.msgpack, { ok: true, results: req.reports.map(() => ({ ok: true })) });
    } catch (err) {
      respondError(bus, msg.reply, ContentType.msgpack, err);
    }
  });
  return seen;
}

const progress = (name: string, value: unknown): TaskReport => ({ type: 'progress', name, id: `id-${name}`, attempt: 1, progress: value as never });

test('a malformed report is refused alone; the reports batched with it and after it still land', async () => {
  const clock = new FakeClock();
  const bus = new MemBus(clock);
  const seen = leader(bus);
  const r = new Reporter(bus, clock, 'w1', logger());
  let deep: unknown = 1;
  for (let i = 0; i < 70; i++) deep = { d: deep }; // over the leader's 64 levels
  const outcomes = new Map<string, string>();
  const track = (name: string, p: Promise<void>) =>
    p.then(
      () => outcomes.set(name, 'ok'),
      (e: { code?: string }) => outcomes.set(name, e.code ?? 'error'),
    );
  track('a', r.send(progress('a', 1), '7'));
  track('bad', r.send(progress('bad', deep), '7'));
  track('c', r.send(progress('c', 3), '7'));
  for (let i = 0; i < 20 && outcomes.size < 3; i++) {
    await clock.advance(50);
    await settle();
  }
  assert.deepEqual(Object.fromEntries(outcomes), { a: 'ok', bad: 'BAD_REQUEST', c: 'ok' });
  track('later', r.send(progress('later', 4), '7'));
  for (let i = 0; i < 20 && outcomes.size < 4; i++) {
    await clock.advance(50);
    await settle();
  }
  assert.equal(outcomes.get('later'), 'ok', 'the queue moves on');
  assert.ok(seen.requests <= 5, `${seen.requests} requests: one refused batch, then one per report, then batching again`);
  r.close();
});

/** A leader that records each request's epoch and report names, and answers each report as `answer` says. */
function recordingLeader(bus: MemBus, answer: (r: TaskReport) => { ok: true } | { ok: false; error: { code: string; message: string } } = () => ({ ok: true })) {
  const requests: Array<{ epoch: string; names: string[] }> = [];
  const sub = bus.subscribe(WorkerSubject.report, (msg) => {
    const req = validateReportRequest(decodeRequest(msg.data, ContentType.msgpack));
    requests.push({ epoch: req.epoch, names: req.reports.map((r) => r.name) });
    respond(bus, msg.reply, ContentType.msgpack, { ok: true, results: req.reports.map(answer) });
  });
  return { requests, sub };
}

/** outcome settles to 'ok' or the error's code. */
const outcome = (p: Promise<void>): Promise<string> =>
  p.then(
    () => 'ok',
    (e: { code?: string }) => e.code ?? 'error',
  );

test('reports made together go in one request per incarnation, in the order made', async () => {
  const clock = new FakeClock();
  const bus = new MemBus(clock);
  const { requests } = recordingLeader(bus);
  const r = new Reporter(bus, clock, 'w1', logger());
  const done = Promise.all([r.send(progress('a', 1), '7'), r.send(progress('b', 2), '7'), r.send(progress('c', 3), '8'), r.send(progress('d', 4), '7')].map(outcome));
  await clock.advance(100);
  assert.deepEqual(await done, ['ok', 'ok', 'ok', 'ok']);
  assert.deepEqual(requests, [
    { epoch: '7', names: ['a', 'b', 'd'] },
    { epoch: '8', names: ['c'] },
  ]);
  r.close();
});

test('with no leader to answer, reports wait and are sent again until one does', async () => {
  const clock = new FakeClock();
  const bus = new MemBus(clock);
  const r = new Reporter(bus, clock, 'w1', logger());
  let settled = false;
  const done = outcome(r.send(progress('a', 1), '7')).finally(() => (settled = true));
  await clock.advance(5000);
  assert.equal(settled, false, 'still queued: nobody answered');
  const { requests } = recordingLeader(bus);
  await clock.advance(5000);
  assert.equal(await done, 'ok');
  assert.deepEqual(requests, [{ epoch: '7', names: ['a'] }], 'delivered once a leader answers');
  r.close();
});

test('a report the leader refuses as not ours rejects with NOT_OWNER; the rest of its batch is accepted', async () => {
  const clock = new FakeClock();
  const bus = new MemBus(clock);
  recordingLeader(bus, (rep) => (rep.name === 'moved' ? { ok: false, error: { code: 'NOT_OWNER', message: 'moved away' } } : { ok: true }));
  const r = new Reporter(bus, clock, 'w1', logger());
  const done = Promise.all([r.send(progress('a', 1), '7'), r.send(progress('moved', 2), '7')].map(outcome));
  await clock.advance(100);
  assert.deepEqual(await done, ['ok', 'NOT_OWNER']);
  r.close();
});

test('drop refuses what is queued about one name; close refuses everything queued and everything after', async () => {
  const clock = new FakeClock();
  const bus = new MemBus(clock);
  const { requests } = recordingLeader(bus);
  const r = new Reporter(bus, clock, 'w1', logger());
  const a = outcome(r.send(progress('a', 1), '7'));
  const b = outcome(r.send(progress('b', 2), '7'));
  r.drop('a');
  assert.equal(await a, 'NOT_OWNER');
  const c = outcome(r.send(progress('c', 3), '7'));
  r.close();
  assert.deepEqual([await b, await c, await outcome(r.send(progress('d', 4), '7'))], ['NOT_OWNER', 'NOT_OWNER', 'NOT_OWNER']);
  await clock.advance(100);
  assert.deepEqual(requests, [], 'nothing sent');
});
