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
