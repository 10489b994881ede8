// resource.apply meeting spec.schedule, on plain values and a wall clock the
// test moves (UTC, no DST): a schedule added, changed or removed by an
// update takes effect from the apply on (schedule-update.ts), an apply's
// create is resource.add's, and a dry run says a schedule change is
// "updated".

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Input, PlannedEvent } from '#actors/leader/core/batch.js';
import { ClusterState } from '#actors/leader/core/state.js';
import { loadWorker } from '#actors/leader/core/repair.js';
import { validateApply } from '#protocol/apply.js';
import { validateScheduleRequest, type RunView, type ScheduleAction, type ScheduleView } from '#protocol/schedule-ops.js';
import { ResourceState, type Json, type Resource, type Spec } from '#protocol/messages.js';
import { context, planned } from '../fakes/core.js';
import { tick } from '../fakes/tick.js';
import { request } from '../fakes/requests.js';

type Scheduled = Resource & { schedule?: ScheduleView; runs?: RunView[] };
type Answer = { ok: true; dryRun?: true; results: Array<{ name: string; outcome?: string }> };

const T0 = Date.parse('2026-06-01T09:30:00Z');
const min = 60_000;
const iso = (t: number) => new Date(t).toISOString();

/** A leader's state with workers, driven by batches at wall times the test gives. */
class World {
  s = new ClusterState();
  events: PlannedEvent[] = [];
  wall = T0;
  constructor(capacity = 10) {
    loadWorker(this.s, 'w1', capacity, 'L-w1', ['noop']);
  }
  batch(inputs: Input[] = [{ kind: 'tick' }], ids?: { n: number }) {
    const p = planned(this.s, inputs, context({ ...tick(this.wall, 0.5, ids), wall: iso(this.wall), now: this.wall }));
    this.s.committed(p.txns.flatMap((t) => t.names), 1);
    this.events.push(...p.events);
    return p;
  }
  at(t: number) {
    this.wall = t;
    return this.batch();
  }
  apply(resources: Array<{ name: string; spec: Spec }>, dryRun = false): Answer {
    const p = this.batch([{ kind: 'client', req: request({ op: 'apply', ...validateApply({ resources, ...(dryRun ? { dryRun } : {}) }) }) }]);
    return p.replies[0]!.build(() => 1) as unknown as Answer;
  }
  op(action: ScheduleAction, body: Record<string, Json>): Record<string, unknown> {
    const p = this.batch([{ kind: 'client', req: request({ op: 'schedule' as const, action, ...validateScheduleRequest(action, body) }) }]);
    return p.replies[0]!.build(() => 1) as Record<string, unknown>;
  }
  report(name: string, type: 'started' | 'completed' | 'failed'): void {
    const e = this.s.resources.get(name)!;
    const base = { name, id: e.rec.id, attempt: e.rec.attempt };
    const r = type === 'completed' ? { type, ...base, result: { attempt: e.rec.attempt } } : type === 'failed' ? { type, ...base, error: 'boom' } : { type, ...base };
    this.batch([{ kind: 'client', req: request({ op: 'report', worker: 'w1', epoch: 'L-w1', reports: [r as never] }) }]);
  }
  get(name: string): Scheduled {
    const p = this.batch([{ kind: 'client', req: request({ op: 'get', name }) }]);
    return (p.replies[0]!.build(() => 1) as unknown as { resource: Scheduled }).resource;
  }
  fired(): string[] {
    return this.events.flatMap((e) => (e.kind === 'schedule.fired' ? [e.payload.fireTime as string] : []));
  }
  skips(): string[] {
    return this.events.flatMap((e) => (e.kind === 'schedule.skipped' ? [String(e.payload.why)] : []));
  }
  e(name: string) {
    return this.s.resources.get(name)!;
  }
}

const every = (every: string, more: Record<string, Json> = {}): Spec => ({ schedule: { every, ...more } });

describe('apply and schedules', () => {
  test("apply's create makes the same scheduled resource as resource.add: record, writes, next fires", () => {
    const viaAdd = new World();
    const viaApply = new World();
    const spec = every('1h', { overlap: 'queue', jitterMs: 0 });
    const a = viaAdd.batch([{ kind: 'client', req: request({ op: 'add', name: 'n', spec }) }], { n: 100 });
    const b = viaApply.batch([{ kind: 'client', req: request({ op: 'apply', ...validateApply({ resources: [{ name: 'n', spec }] }) }) }], { n: 100 });
    assert.deepEqual(viaApply.e('n').rec, viaAdd.e('n').rec);
    assert.equal(viaApply.e('n').rec.state, ResourceState.scheduled);
    assert.equal(viaApply.e('n').assign, undefined, 'no attempt before the first fire');
    assert.deepEqual(b.wakeAt, a.wakeAt);
    assert.deepEqual(b.txns[0]!.ops[0], a.txns[0]!.ops[0], 'the same record is written');
    assert.deepEqual(viaApply.get('n').schedule!.next, viaAdd.get('n').schedule!.next);
    assert.deepEqual(viaApply.at(T0 + 30 * min).events.map((e) => e.kind), viaAdd.at(T0 + 30 * min).events.map((e) => e.kind));
  });

  test('a dry run says a schedule change is updated, and changes nothing', () => {
    const w = new World();
    w.apply([{ name: 'n', spec: every('1h') }, { name: 'p', spec: {} }]);
    const before = w.e('n').rec;
    const dry = w.apply([{ name: 'n', spec: every('15m') }, { name: 'p', spec: every('1h') }], true);
    assert.deepEqual(dry.results.map((r) => r.outcome), ['updated', 'updated']);
    assert.equal(w.e('n').rec, before);
    assert.equal(w.e('p').rec.sched, undefined);
    assert.deepEqual(w.apply([{ name: 'n', spec: every('60m') }], true).results.map((r) => r.outcome), ['updated'], 'the spec differs, though its times do not');
  });

  test('a changed interval takes effect from now: the next fire is the new rule\'s first after the apply, nothing before it is caught up', () => {
    const w = new World();
    w.apply([{ name: 'n', spec: every('1h') }]);
    assert.equal(w.batch().wakeAt, Date.parse('2026-06-01T10:00:00Z'));
    w.wall = T0 + 10 * min; // 09:40
    w.apply([{ name: 'n', spec: every('15m') }]);
    assert.deepEqual(w.get('n').schedule!.next.slice(0, 2), ['2026-06-01T09:45:00.000Z', '2026-06-01T10:00:00.000Z']);
    assert.equal(w.batch().wakeAt, Date.parse('2026-06-01T09:45:00Z'), 'the shell is woken for the new rule');
    w.at(Date.parse('2026-06-01T09:45:00Z'));
    assert.deepEqual(w.fired(), ['2026-06-01T09:45:00.000Z'], '09:30 (before the apply) is neither fired nor counted');
    assert.deepEqual(w.skips(), []);
  });

  test('a change to how fires run (overlap) keeps the schedule in place; its own queued fires go, queued backfills stay', () => {
    const w = new World();
    w.apply([{ name: 'n', spec: every('10m', { overlap: 'queue' }) }]);
    w.at(Date.parse('2026-06-01T09:40:00Z'));
    w.report('n', 'started');
    w.at(Date.parse('2026-06-01T09:50:00Z'));
    w.at(Date.parse('2026-06-01T10:00:00Z'));
    w.op('backfill', { name: 'n', from: '2026-06-01T08:00:00Z', to: '2026-06-01T08:00:00Z' });
    assert.equal(w.e('n').rec.sched!.queued.length, 3);
    const attempt = w.e('n').assign!.attempt;
    w.apply([{ name: 'n', spec: every('10m', { overlap: 'skip' }) }]);
    const st = w.e('n').rec.sched!;
    assert.deepEqual(st.queued.map((q) => q.cause), ['backfill']);
    assert.ok(w.skips().includes('spec.schedule changed'));
    assert.equal(st.current!.run, 1, 'the running run goes on');
    assert.equal(w.e('n').assign!.attempt, attempt, 'no new attempt: the task never sees its schedule');
    assert.equal(w.e('n').assign!.hold, undefined);
    w.at(Date.parse('2026-06-01T10:10:00Z'));
    assert.match(w.skips().at(-1)!, /overlap/, 'the new policy applies to the next fire');
  });

  test('gaining a schedule: idle resources wait for the first fire; a running attempt becomes a run', () => {
    const w = new World(1);
    w.apply([{ name: 'busy', spec: {} }, { name: 'waits', spec: {} }, { name: 'done', spec: {} }]);
    assert.equal(w.e('waits').rec.state, ResourceState.pending, 'no room');
    w.report('busy', 'started');
    w.apply([{ name: 'busy', spec: every('1h') }, { name: 'waits', spec: every('1h') }]);
    assert.equal(w.e('waits').rec.state, ResourceState.scheduled);
    assert.ok(!w.s.pending.has('waits'));
    assert.equal(w.e('waits').assign, undefined);
    const busy = w.e('busy');
    assert.equal(busy.rec.state, ResourceState.running);
    assert.deepEqual({ run: busy.rec.sched!.current!.run, cause: busy.rec.sched!.current!.cause }, { run: 1, cause: 'trigger' });
    w.at(Date.parse('2026-06-01T10:00:00Z'));
    assert.match(w.skips().at(-1)!, /overlap: run 1/, 'the fire meets the adopted run under overlap skip');
    w.report('busy', 'completed');
    assert.equal(w.e('busy').rec.state, ResourceState.scheduled);
    assert.deepEqual(w.get('busy').runs!.map((r) => [r.run, r.state]), [[1, 'completed']]);
    // 'done' took the room busy's run left.
    w.apply([{ name: 'waits', spec: {} }]);
    assert.equal(w.e('waits').rec.state, ResourceState.pending, 'lost before its first fire: it runs once, as an add without a schedule does (no room yet)');
  });

  test('a completed resource that gains a schedule is scheduled, and runs at its first fire', () => {
    const w = new World();
    w.apply([{ name: 'x', spec: {} }]);
    w.report('x', 'completed');
    assert.equal(w.e('x').rec.state, ResourceState.completed);
    w.apply([{ name: 'x', spec: every('1h') }]);
    assert.equal(w.e('x').rec.state, ResourceState.scheduled);
    assert.equal(w.e('x').rec.sched!.runs, 0);
    w.at(Date.parse('2026-06-01T10:00:00Z'));
    assert.deepEqual(w.fired(), ['2026-06-01T10:00:00.000Z']);
    assert.equal(w.e('x').rec.sched!.current!.run, 1);
  });

  test('losing a schedule: idle after runs keeps its last run\'s state and result; a running run ends and no fire follows', () => {
    const w = new World();
    w.apply([{ name: 'a', spec: every('10m') }, { name: 'b', spec: every('10m') }]);
    w.at(Date.parse('2026-06-01T09:40:00Z'));
    w.report('a', 'completed');
    w.report('b', 'started');
    const result = w.e('a').rec.result;
    w.apply([{ name: 'a', spec: {} }, { name: 'b', spec: {} }]);
    assert.equal(w.e('a').rec.state, ResourceState.completed);
    assert.deepEqual(w.e('a').rec.result, result);
    assert.equal(w.e('a').assign, undefined, 'it does not run again');
    assert.equal(w.e('b').rec.state, ResourceState.running);
    w.at(Date.parse('2026-06-01T09:50:00Z'));
    assert.deepEqual(w.fired().length, 2, 'no fire after the schedule went');
    w.report('b', 'completed');
    assert.equal(w.e('b').rec.state, ResourceState.completed);
    assert.equal(w.batch().wakeAt, undefined);
    assert.equal(w.get('b').schedule, undefined);
    // Given a schedule again, run numbers carry on.
    w.apply([{ name: 'b', spec: every('10m') }]);
    w.at(Date.parse('2026-06-01T10:00:00Z'));
    assert.equal(w.e('b').rec.sched!.current!.run, 2);
  });

  test('paused in the spec pauses and resumes; a pause by schedule.pause outlives an apply that leaves paused alone', () => {
    const w = new World();
    w.apply([{ name: 'n', spec: every('10m') }]);
    w.op('pause', { name: 'n', note: 'by hand' });
    w.apply([{ name: 'n', spec: every('10m', { overlap: 'queue' }) }]);
    assert.equal(w.e('n').rec.sched!.paused?.note, 'by hand');
    w.apply([{ name: 'n', spec: every('10m', { overlap: 'queue', paused: true, note: 'spec' }) }]);
    assert.equal(w.e('n').rec.sched!.paused?.note, 'by hand', 'already paused');
    w.at(Date.parse('2026-06-01T09:50:00Z'));
    assert.deepEqual(w.fired(), []);
    w.apply([{ name: 'n', spec: every('10m', { overlap: 'queue', paused: false }) }]);
    assert.equal(w.e('n').rec.sched!.paused, undefined);
    assert.ok(w.events.some((e) => e.kind === 'schedule.resumed'));
    w.at(Date.parse('2026-06-01T10:00:00Z'));
    assert.deepEqual(w.fired(), ['2026-06-01T10:00:00.000Z']);
  });

  test('a limit raised past the runs made wakes a finished schedule; an endAt moved into the past finishes an idle one', () => {
    const w = new World();
    w.apply([{ name: 'n', spec: every('10m', { limit: 1 }) }, { name: 'm', spec: every('10m') }]);
    w.at(Date.parse('2026-06-01T09:40:00Z'));
    w.report('n', 'completed');
    w.report('m', 'completed');
    assert.equal(w.e('n').rec.state, ResourceState.completed);
    w.apply([{ name: 'n', spec: every('10m', { limit: 2 }) }, { name: 'm', spec: every('10m', { endAt: '2026-06-01T09:45:00Z' }) }]);
    assert.equal(w.e('n').rec.state, ResourceState.scheduled);
    assert.equal(w.e('m').rec.state, ResourceState.completed);
    w.at(Date.parse('2026-06-01T09:50:00Z'));
    assert.deepEqual(w.fired(), ['2026-06-01T09:40:00.000Z', '2026-06-01T09:40:00.000Z', '2026-06-01T09:50:00.000Z']);
  });
});
