// Schedules in the leader's core, on plain values: time is only the batch's
// wall clock (ctx.wall), moved by the test. DST in Europe/Paris, leap days,
// a fire during a takeover, an outage longer than the catch-up window, each
// overlap policy, a backfill across a pause, triggers, and validation.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Input, Plan, PlannedEvent } from '#actors/leader/core/batch.js';
import { ClusterState } from '#actors/leader/core/state.js';
import { loadResource, loadWorker } from '#actors/leader/core/repair.js';
import { keys } from '#protocol/keys.js';
import { decodeRecord, type StoredResource } from '#protocol/stored.js';
import { fireTimes, jitterOf, validateSchedule } from '#protocol/schedule.js';
import { validateScheduleRequest, type RunView, type ScheduleAction, type ScheduleView } from '#protocol/schedule-ops.js';
import { parseCommand } from '#protocol/request.js';
import { ClientSubject } from '#protocol/subjects.js';
import { BadRequestError } from '#protocol/errors.js';
import type { Json, Resource } from '#protocol/messages.js';
import { units } from '#actors/leader/encode.js';
import { context, planned } from '../fakes/core.js';
import { request } from '../fakes/requests.js';

type Scheduled = Resource & { schedule: ScheduleView; runs: RunView[] };

/** A leader's state with one worker, driven by batches at wall times the test gives. */
class World {
  s = new ClusterState();
  events: PlannedEvent[] = [];
  last!: ReturnType<typeof planned>;
  wall = 0;
  constructor(start: string | number) {
    this.wall = typeof start === 'number' ? start : Date.parse(start);
    loadWorker(this.s, 'w1', 10, 'L-w1', ['noop']);
  }
  batch(inputs: Input[] = [{ kind: 'tick' }]): ReturnType<typeof planned> {
    const p = planned(this.s, inputs, context({ wall: new Date(this.wall).toISOString(), now: this.wall }));
    this.s.committed(p.txns.flatMap((t) => t.names), 1);
    this.events.push(...p.events);
    this.last = p;
    return p;
  }
  at(t: string | number): ReturnType<typeof planned> {
    this.wall = typeof t === 'number' ? t : Date.parse(t);
    return this.batch();
  }
  add(name: string, schedule: Record<string, Json>): void {
    this.batch([{ kind: 'client', req: request({ op: 'add', name, spec: { schedule } }) }]);
  }
  op(action: ScheduleAction, body: Record<string, Json>, id?: string): Record<string, unknown> {
    const c = { op: 'schedule' as const, action, ...validateScheduleRequest(action, body) };
    const p = this.batch([{ kind: 'client', req: request(c, id ? { id } : {}) }]);
    return p.replies[0]!.build(() => 1) as Record<string, unknown>;
  }
  /** report tells the leader that the current attempt of `name` ended. */
  end(name: string, type: 'completed' | 'failed' = 'completed'): void {
    const e = this.s.resources.get(name)!;
    const base = { name, id: e.rec.id, attempt: e.rec.attempt };
    const reports = type === 'completed' ? [{ type, ...base, result: { n: e.rec.sched?.current?.run ?? 0 } }] : [{ type, ...base, error: 'boom' }];
    this.batch([{ kind: 'client', req: request({ op: 'report', worker: 'w1', epoch: 'L-w1', reports }) }]);
  }
  get(name: string): Scheduled {
    const p = this.batch([{ kind: 'client', req: request({ op: 'get', name }) }]);
    return (p.replies[0]!.build(() => 1) as unknown as { resource: Scheduled }).resource;
  }
  fired(name?: string): string[] {
    return this.events.flatMap((e) => (e.kind === 'schedule.fired' && (!name || e.payload.name === name) ? [e.payload.fireTime] : []));
  }
  skips(): Array<{ why: string; count: number; fireTime: string }> {
    return this.events.flatMap((e) => (e.kind === 'schedule.skipped' ? [{ why: e.payload.why, count: e.payload.count, fireTime: e.payload.fireTime }] : []));
  }
  rec(name: string): StoredResource {
    return this.s.resources.get(name)!.rec;
  }
}

const iso = (t: number) => new Date(t).toISOString();

describe('schedule rules', () => {
  test('a cron in Europe/Paris across the spring change: 02:30 does not exist on 29 March and fires at 03:00 CEST, once', () => {
    const w = new World('2026-03-27T12:00:00Z');
    w.add('nightly', { cron: '30 2 * * *', timeZone: 'Europe/Paris' });
    for (let t = Date.parse('2026-03-27T12:00:00Z'); t <= Date.parse('2026-03-31T00:00:00Z'); t += 15 * 60_000) {
      w.at(t);
      if (w.rec('nightly').sched?.current) w.end('nightly');
    }
    assert.deepEqual(w.fired(), ['2026-03-28T01:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']);
  });

  test('across the autumn change: 02:30 happens twice on 25 October and fires once; an hourly cron fires every real hour, none twice', () => {
    const w = new World('2026-10-24T12:00:00Z');
    w.add('nightly', { cron: '30 2 * * *', timeZone: 'Europe/Paris' });
    w.add('hourly', { cron: '0 * * * *', timeZone: 'Europe/Paris' });
    for (let t = Date.parse('2026-10-24T12:00:00Z'); t <= Date.parse('2026-10-26T00:00:00Z'); t += 10 * 60_000) {
      w.at(t);
      for (const n of ['nightly', 'hourly']) if (w.rec(n).sched?.current) w.end(n);
    }
    assert.deepEqual(w.fired('nightly'), ['2026-10-25T00:30:00.000Z']);
    const hourly = w.fired('hourly');
    assert.equal(new Set(hourly).size, hourly.length, 'no fire time twice');
    // 36 real hours from 12:00Z to 00:00Z two days on, every one of them.
    assert.equal(hourly.length, 36);
    assert.ok(hourly.includes('2026-10-25T00:00:00.000Z') && hourly.includes('2026-10-25T01:00:00.000Z'), '02:00 CEST and 02:00 CET both fire');
  });

  test('a leap-day cron fires only on 29 February, and schedule.next lists the next three', () => {
    const w = new World('2027-01-01T00:00:00Z');
    w.add('leap', { cron: '0 12 29 2 *' });
    assert.deepEqual(w.get('leap').schedule.next, ['2028-02-29T12:00:00.000Z', '2032-02-29T12:00:00.000Z', '2036-02-29T12:00:00.000Z']);
    w.at('2028-02-28T12:00:00Z');
    w.at('2028-03-01T00:00:00Z');
    assert.deepEqual(w.fired(), []);
    w.at('2028-02-29T12:00:00.500Z');
    assert.deepEqual(w.fired(), []);
    // Time only moves forward in a real leader; here a fresh world checks the day itself.
    const v = new World('2028-02-29T11:00:00Z');
    v.add('leap', { cron: '0 12 29 2 *' });
    v.at('2028-02-29T12:00:00.200Z');
    assert.deepEqual(v.fired(), ['2028-02-29T12:00:00.000Z']);
  });

  test('a fire starts a run: its record, assignment and the new fire time commit in one transaction', () => {
    const w = new World(10_000);
    w.add('r', { every: '10s' });
    assert.equal(w.rec('r').state, 'scheduled');
    assert.equal(w.last.wakeAt, 20_000, 'the shell is asked to wake at the first fire');
    const p = w.at(20_050);
    assert.deepEqual(w.fired(), [iso(20_000)]);
    assert.equal(p.txns.length, 1);
    const puts = (p.txns[0]!.ops as Array<{ put?: string }>).flatMap((o) => (o.put ? [o.put] : []));
    assert.ok(puts.includes(keys.resource('r')) && puts.includes(keys.assignment('w1', 'r')));
    assert.equal(w.rec('r').sched!.through, 20_000);
    assert.equal(w.rec('r').sched!.current!.run, 1);
    assert.equal(w.last.wakeAt, 30_000);
  });

  test('a fire during a takeover: the next leader fires a time the old one planned but never committed, and never one it committed', () => {
    const w = new World(0);
    w.add('r', { every: '10s' });
    const beforeFire = structuredClone(w.rec('r'));
    w.at(10_020); // the old leader plans the fire at 10 s
    const afterFire = structuredClone(w.rec('r'));
    // New leader A read etcd before the old leader's commit applied (it failed: fenced).
    const a = new World(10_090);
    a.s.resources.clear();
    loadResource(a.s, decodeRecord(encodeRecord(beforeFire)).rec, 5, undefined);
    a.batch([{ kind: 'reconcile' }]);
    assert.deepEqual(a.fired(), [iso(10_000)], 'fired by the new leader, once');
    a.at(10_500);
    assert.deepEqual(a.fired(), [iso(10_000)]);
    // New leader B read etcd after the commit: the fire is in the record, and it is not fired again.
    const b = new World(10_090);
    loadResource(b.s, decodeRecord(encodeRecord(afterFire)).rec, 6, { worker: 'w1', epoch: 'L-w1', attempt: 1 });
    b.batch([{ kind: 'reconcile' }]);
    b.at(19_999);
    assert.deepEqual(b.fired(), []);
    assert.equal(b.rec('r').sched!.current!.run, 1, 'run 1 is still the running one');
  });

  test('an outage longer than the catch-up window skips and counts what it missed; fires inside the window still run (overlap applies)', () => {
    const w = new World(0);
    w.add('r', { every: '10s', catchupWindowMs: 60_000 });
    // The leader is gone from 5 s to 300.5 s.
    w.at(300_500);
    const skips = w.skips();
    assert.deepEqual(skips[0], { why: 'catch-up window', count: 24, fireTime: iso(10_000) });
    assert.deepEqual(w.fired(), [iso(250_000)], 'the oldest fire inside the window runs');
    assert.deepEqual(skips.slice(1).map((s) => s.why.split(':')[0]), ['overlap', 'overlap', 'overlap', 'overlap', 'overlap']);
    assert.equal(w.rec('r').sched!.skipped, 29);
    assert.equal(w.rec('r').sched!.through, 300_000);
  });

  test('overlap skip: a 3 s run on a 2 s schedule runs every other fire and says why it skipped', () => {
    const w = new World(0);
    w.add('r', { every: '2s' });
    for (let t = 1_000; t <= 13_000; t += 1_000) {
      w.at(t);
      const cur = w.rec('r').sched!.current;
      if (cur && t - Date.parse(cur.startedAt) >= 3_000) w.end('r');
    }
    assert.deepEqual(w.fired(), [2_000, 6_000, 10_000].map(iso));
    assert.deepEqual(w.skips().map((s) => [s.fireTime, s.why]), [
      [iso(4_000), 'overlap: run 1 is still going'],
      [iso(8_000), 'overlap: run 2 is still going'],
      [iso(12_000), 'overlap: run 3 is still going'],
    ]);
  });

  test('overlap queue: fires wait and run back to back, each with its own fire time', () => {
    const w = new World(0);
    w.add('r', { every: '2s', overlap: 'queue' });
    w.at(2_000);
    w.at(4_000);
    w.at(6_000);
    assert.deepEqual(w.get('r').schedule.queued, [iso(4_000), iso(6_000)]);
    w.end('r');
    assert.equal(w.rec('r').sched!.current!.fireTime, 4_000, 'the queued fire starts as the run ends');
    w.end('r');
    w.end('r');
    assert.deepEqual(w.fired(), [2_000, 4_000, 6_000].map(iso));
    assert.deepEqual(w.get('r').runs.map((r) => [r.run, r.state]), [[3, 'completed'], [2, 'completed'], [1, 'completed']]);
    assert.equal(w.rec('r').state, 'scheduled');
  });

  test('overlap replace: the running attempt is stopped before the new run starts (held until the old one says it stopped)', () => {
    const w = new World(0);
    w.add('r', { every: '2s', overlap: 'replace' });
    w.at(2_000);
    const first = w.s.resources.get('r')!.assign!;
    w.at(4_000);
    const e = w.s.resources.get('r')!;
    assert.equal(e.assign!.hold, true, 'the new run waits');
    assert.equal(e.handoff!.from.attempt, first.attempt, 'for the old attempt to stop');
    assert.deepEqual(w.get('r').runs.map((r) => [r.run, r.state]), [[1, 'replaced']]);
    // The old attempt checkpoints as it stops: the new run does not resume from it.
    w.batch([{ kind: 'client', req: request({ op: 'report', worker: 'w1', epoch: 'L-w1', reports: [{ type: 'checkpoint', name: 'r', id: e.rec.id, attempt: first.attempt, seq: 1, state: { at: 3 } }] }) }]);
    assert.equal(w.s.resources.get('r')!.assign!.checkpoint, undefined);
    // The old attempt reports it stopped: the new one is released.
    w.batch([{ kind: 'client', req: request({ op: 'report', worker: 'w1', epoch: 'L-w1', reports: [{ type: 'stopped', name: 'r', id: e.rec.id, attempt: first.attempt }] }) }]);
    assert.equal(w.s.resources.get('r')!.assign!.hold, undefined);
    assert.equal(w.rec('r').sched!.current!.run, 2);
  });

  test('overlap allow: the new run starts at once, the old attempt is told to stop but not waited for', () => {
    const w = new World(0);
    w.add('r', { every: '2s', overlap: 'allow' });
    w.at(2_000);
    w.at(4_000);
    const e = w.s.resources.get('r')!;
    assert.equal(e.assign!.hold, undefined);
    assert.equal(e.handoff, undefined);
    assert.equal(e.assign!.attempt, 2);
    assert.deepEqual(w.fired(), [2_000, 4_000].map(iso));
  });

  test('a backfill across a pause: the paused fires are skipped and counted on resume, and a backfill of that range runs each of them', () => {
    const w = new World(0);
    w.add('r', { every: '10s' });
    w.at(10_000);
    w.end('r');
    w.op('pause', { name: 'r', note: 'site down' });
    assert.equal(w.get('r').schedule.note, 'site down');
    assert.deepEqual(w.get('r').schedule.next, [], 'a paused schedule has no next fire');
    assert.equal(w.last.wakeAt, undefined);
    w.at(45_000);
    assert.deepEqual(w.fired(), [iso(10_000)], 'nothing fires while paused');
    w.op('resume', { name: 'r' });
    assert.deepEqual(w.skips(), [{ why: 'paused', count: 3, fireTime: iso(20_000) }]);
    const reply = w.op('backfill', { name: 'r', from: iso(20_000), to: iso(40_000), overlap: 'queue' });
    assert.deepEqual([reply.fires, reply.started, reply.queued], [3, 1, 2]);
    w.end('r');
    w.end('r');
    w.end('r');
    assert.deepEqual(w.get('r').runs.map((r) => [r.fireTime, r.cause]), [
      [iso(40_000), 'backfill'],
      [iso(30_000), 'backfill'],
      [iso(20_000), 'backfill'],
      [iso(10_000), 'schedule'],
    ]);
    w.at(50_000);
    assert.deepEqual(w.fired().at(-1), iso(50_000), 'and the schedule goes on');
  });

  test('a trigger runs now; sent twice with one request id it runs once; refused while running under skip', () => {
    const w = new World(0);
    w.add('r', { every: '1h' });
    w.at(5_000);
    const r1 = w.op('trigger', { name: 'r' }, 'T1');
    const r2 = w.op('trigger', { name: 'r' }, 'T1');
    assert.equal(r1.fired, 'started');
    assert.equal((r2.resource as Resource).name, 'r');
    assert.deepEqual(w.fired(), [iso(5_000)]);
    const r3 = w.op('trigger', { name: 'r' }, 'T2');
    assert.equal((r3 as { error: { code: string } }).error.code, 'CONFLICT');
    assert.equal(w.rec('r').sched!.fired, 0, 'triggers do not count against limit');
  });

  test('limit bounds the schedule\'s runs; endAt ends it; a finished schedule leaves the last run\'s state', () => {
    const w = new World(0);
    w.add('r', { every: '1s', limit: 2, history: 1 });
    for (let t = 1_000; t <= 5_000; t += 1_000) {
      w.at(t);
      if (w.rec('r').sched!.current) w.end('r');
    }
    assert.deepEqual(w.fired(), [1_000, 2_000].map(iso));
    assert.equal(w.rec('r').state, 'completed');
    assert.equal(w.get('r').runs.length, 1, 'history keeps spec.schedule.history runs');
    const v = new World(0);
    v.add('e', { every: '1s', endAt: iso(2_500) });
    assert.deepEqual(v.get('e').schedule.next, [iso(1_000), iso(2_000)]);
  });

  test('a run fails past its restart policy: run.failed, and the schedule waits for the next fire', () => {
    const w = new World(0);
    w.add('r', { every: '10s' });
    w.batch([{ kind: 'client', req: request({ op: 'delete', name: 'nothing' }) }]);
    w.at(10_000);
    for (let i = 0; i < 3; i++) w.end('r', 'failed');
    assert.equal(w.rec('r').state, 'scheduled');
    assert.deepEqual(w.get('r').runs.map((r) => [r.state, r.error]), [['failed', 'boom']]);
    assert.ok(w.events.some((e) => e.kind === 'run.failed'));
  });

  test('jitter delays a fire by the same amount on every leader, within [0, jitterMs)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 20 }), fc.integer({ min: 0, max: 2 ** 42 }), fc.integer({ min: 1, max: 60_000 }), (name, t, j) => {
        const d = jitterOf(name, t, j);
        return d >= 0 && d < j && d === jitterOf(name, t, j);
      }),
    );
    const w = new World(0);
    w.add('r', { every: '10s', jitterMs: 5_000 });
    const d = jitterOf('r', 10_000, 5_000);
    assert.equal(w.last.wakeAt, 10_000 + d);
    if (d > 0) {
      w.at(10_000 + d - 1);
      assert.deepEqual(w.fired(), []);
    }
    w.at(10_000 + d);
    assert.deepEqual(w.fired(), [iso(10_000)]);
  });

  test('interval fire times are whole multiples since startAt (or the epoch), strictly after the given time', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3600 }), fc.integer({ min: 0, max: 2 ** 41 }), (secs, after) => {
        const s = validateSchedule({ every: `${secs}s` });
        const [a, b] = fireTimes(s, after, 2);
        return a! > after && a! - after <= secs * 1000 && a! % (secs * 1000) === 0 && b! - a! === secs * 1000;
      }),
    );
  });

  test('invalid schedules are refused with InvalidScheduleError (BAD_REQUEST) naming what is wrong', () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ cron: 'nope' }, /invalid cron expression/],
      [{ cron: '0 3 * * *', timeZone: 'Mars/Olympus' }, /unknown time zone/],
      [{ cron: '0 3 * * *', every: '1h' }, /exactly one of "cron" and "every"/],
      [{}, /exactly one/],
      [{ every: '500ms' }, /at least 1s/],
      [{ every: 'often' }, /duration/],
      [{ every: '1h', overlap: 'sometimes' }, /overlap/],
      [{ every: '1h', timeZone: 'UTC' }, /"cron" only/],
      [{ every: '1h', startAt: 'tomorrow' }, /startAt/],
      [{ every: '1h', startAt: '2026-02-01T00:00:00Z', endAt: '2026-01-01T00:00:00Z' }, /before startAt/],
      [{ every: '1h', limit: 0 }, /limit/],
      [{ every: '1h', history: 1000 }, /history/],
      [{ every: '1h', when: 'now' }, /unknown field/],
    ];
    for (const [v, re] of bad) {
      assert.throws(() => validateSchedule(v), (err: Error) => err.name === 'InvalidScheduleError' && err instanceof BadRequestError && re.test(err.message), JSON.stringify(v));
    }
    assert.throws(() => parseCommand(ClientSubject.add, { name: 'x', spec: { schedule: { every: '1m', jitterMs: -1 } } }), /jitterMs/);
    assert.throws(() => parseCommand(ClientSubject.scheduleBackfill, { name: 'x', from: 10, to: 5 }), /before "from"/);
    assert.deepEqual(validateSchedule({ every: '1h30m' }).everyMs, 5_400_000);
  });
});

/** encodeRecord writes a record as the leader's encoder does (msgpack), for a load to read back. */
function encodeRecord(rec: StoredResource): Uint8Array {
  const s = new ClusterState();
  s.resources.set(rec.name, { rec, revision: 1, assign: undefined });
  s.touch(rec.name);
  const u = units(s.takeChanges(), 1)[0]!;
  const put = u.ops.find((o) => 'put' in o && o.put === keys.resource(u.name)) as { put: string; value: Uint8Array };
  return put.value;
}

describe('exactly once per fire time, across leaders that die before or after their commits', () => {
  test('any interleaving of time passing, runs ending and commits applied or lost: every fire time runs once (fast-check)', () => {
    type Step = { kind: 'tick'; ms: number; applied: boolean } | { kind: 'end'; applied: boolean };
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 9_000 }), applied: fc.boolean() }),
      fc.record({ kind: fc.constant('end' as const), applied: fc.boolean() }),
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), (steps) => {
        let w = new World(0);
        w.add('r', { every: '2s', overlap: 'queue', history: 100 });
        let durable = structuredClone(w.rec('r'));
        const committed: string[] = [];
        // takeover: a new leader reads what etcd holds.
        const takeover = () => {
          const next = new World(w.wall);
          const rec = decodeRecord(encodeRecord(durable)).rec;
          loadResource(next.s, rec, 1, rec.worker ? { worker: rec.worker, epoch: 'L-w1', attempt: rec.attempt } : undefined);
          w = next;
        };
        const settle = (applied: boolean) => {
          const fired = w.last.events.flatMap((e) => (e.kind === 'schedule.fired' ? [e.payload.fireTime] : []));
          if (applied) {
            durable = structuredClone(w.rec('r'));
            committed.push(...fired);
          } else takeover();
        };
        for (const s of steps) {
          if (s.kind === 'tick') {
            w.wall += s.ms;
            w.batch([{ kind: 'reconcile' }]);
          } else if (w.rec('r').sched?.current && w.rec('r').worker) w.end('r');
          else continue;
          settle(s.applied);
        }
        // Drain what is queued, every commit applied.
        for (let i = 0; i < 200 && w.rec('r').sched!.current; i++) {
          if (w.rec('r').worker) w.end('r');
          else w.batch([{ kind: 'reconcile' }]);
          settle(true);
        }
        const through = durable.sched!.through;
        const want: string[] = [];
        for (let t = 2_000; t <= through; t += 2_000) want.push(iso(t));
        assert.deepEqual([...committed].sort(), want);
      }),
      { numRuns: 200 },
    );
  });
});
