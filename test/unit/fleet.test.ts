// Fleet operations as the plan sees them: cordon and drain with a
// stop-before-start handoff, rebalance rounds within their limits, label
// constraints and preferences, explain and dry-run.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Input } from '#actors/leader/core/batch.js';
import { ClusterState } from '#actors/leader/core/state.js';
import { loadWorker } from '#actors/leader/core/repair.js';
import { add, request } from '../fakes/requests.js';
import { context, planned } from '../fakes/core.js';
import type { Spec } from '#protocol/messages.js';

const ctx = context();
type W = [id: string, capacity: number, labels?: Record<string, string>];

function setup(workers: W[]) {
  const model = new ClusterState();
  for (const [id, cap, labels] of workers) loadWorker(model, id, cap, `L-${id}`, ['noop'], labels ?? {});
  const run = (inputs: Input[]) => planned(model, inputs, ctx);
  const clients = (...reqs: ReturnType<typeof add>[]) => run(reqs.map((req) => ({ kind: 'client' as const, req })));
  const reply = (p: ReturnType<typeof planned>, i = 0) => p.replies[i]!.build(() => 9) as Record<string, any>;
  const report = (worker: string, reports: Array<Record<string, unknown>>) =>
    run([{ kind: 'client', req: request({ op: 'report', worker, epoch: `L-${worker}`, reports: reports as never }) }]);
  const addSpec = (name: string, spec: Spec) => clients(request({ op: 'add', name, spec }));
  return { model, run, clients, reply, report, addSpec };
}

const on = (m: ClusterState, name: string) => m.view(name)!.worker;

describe('cordon', () => {
  test('a cordoned worker keeps what it runs and gets nothing new; uncordon undoes it; unknown ids are NOT_FOUND', () => {
    const s = setup([['w1', 10], ['w2', 10]]);
    s.clients(add('a'));
    const first = on(s.model, 'a')!;
    const p = s.clients(request({ op: 'cordon', worker: first }), request({ op: 'cordon', worker: 'nope' }));
    assert.equal(s.reply(p).ok, true);
    assert.equal(s.reply(p, 1).error.code, 'NOT_FOUND');
    assert.deepEqual(p.events.map((e) => e.kind), ['worker.cordoned']);
    assert.ok(p.txns[0]!.ops.some((op) => 'put' in op && op.put === `gaffer/cordons/${first}`), 'the cordon is written');
    for (let i = 0; i < 5; i++) s.clients(add(`b${i}`));
    assert.equal(on(s.model, 'a'), first, 'it keeps what it runs');
    for (let i = 0; i < 5; i++) assert.notEqual(on(s.model, `b${i}`), first);
    assert.equal(s.model.loads().find((w) => w.id === first)!.cordoned, true);
    s.clients(request({ op: 'uncordon', worker: first }));
    assert.equal(s.model.loads().find((w) => w.id === first)!.cordoned, false);
  });
});

describe('drain and the stop-before-start handoff', () => {
  test('drain moves everything off a worker; the new worker holds until the old one reports stopped', () => {
    const s = setup([['w1', 100], ['w2', 100]]);
    for (let i = 0; i < 6; i++) s.clients(add(`r${i}`));
    const onW1 = [...s.model.workers.get('w1')!.names].sort();
    assert.ok(onW1.length > 0);
    const p = s.clients(request({ op: 'drain', worker: 'w1' }));
    assert.deepEqual({ moved: s.reply(p).moved, remaining: s.reply(p).remaining }, { moved: onW1.length, remaining: 0 });
    const moved = p.events.filter((e) => e.kind === 'resource.moved').map((e) => e.payload as { name: string; reason: string });
    assert.deepEqual(moved.map((m) => m.name).sort(), onW1);
    assert.ok(moved.every((m) => m.reason === 'drain'));
    const name = onW1[0]!;
    const e = s.model.resources.get(name)!;
    assert.equal(e.assign!.worker, 'w2');
    assert.equal(e.assign!.hold, true, 'held: the new worker must not start yet');
    const held = p.txns[0]!.ops.find((op) => 'put' in op && op.put === `gaffer/assign/w2/${name}`);
    assert.ok(held, 'the held assignment is written');
    // The old owner may still checkpoint; the new owner may not report yet.
    const oldAttempt = e.handoff!.from.attempt;
    const cp = s.report('w1', [{ type: 'checkpoint', name, id: e.rec.id, attempt: oldAttempt, seq: 1, state: { at: 5 } }]);
    assert.deepEqual(s.reply(cp).results, [{ ok: true }]);
    const early = s.report('w2', [{ type: 'started', name, id: e.rec.id, attempt: e.assign!.attempt }]);
    assert.equal(s.reply(early).results[0].error.code, 'NOT_OWNER', 'a held attempt cannot start');
    // It stops: the hold is released, with the checkpoint noted for the new attempt.
    const stop = s.report('w1', [{ type: 'stopped', name, id: e.rec.id, attempt: oldAttempt }]);
    assert.deepEqual(s.reply(stop).results, [{ ok: true }]);
    assert.equal(e.assign!.hold, undefined);
    assert.equal(e.assign!.checkpoint, true);
    assert.ok(stop.txns[0]!.ops.some((op) => 'put' in op && op.put === `gaffer/assign/w2/${name}`), 'the released assignment is written');
    // Once every move has finished, the drain is announced; the worker stays cordoned.
    const later = [...p.events, ...stop.events];
    for (const n of onW1.slice(1)) {
      const x = s.model.resources.get(n)!;
      later.push(...s.report('w1', [{ type: 'stopped', name: n, id: x.rec.id, attempt: x.handoff!.from.attempt }]).events);
    }
    const drained = later.filter((ev) => ev.kind === 'worker.drained');
    assert.deepEqual(drained.map((ev) => ev.payload), [{ worker: 'w1', moved: onW1.length, remaining: 0 }], 'announced once, when the last move finished');
    assert.equal(s.model.workers.get('w1')!.assigned, 0);
    assert.equal(s.model.loads().find((w) => w.id === 'w1')!.cordoned, true);
  });

  test('a handoff whose old worker dies is released: the new owner may start at once', () => {
    const s = setup([['w1', 100], ['w2', 100]]);
    s.clients(add('a'));
    const from = on(s.model, 'a')!;
    s.clients(request({ op: 'drain', worker: from }));
    assert.equal(s.model.resources.get('a')!.assign!.hold, true);
    s.run([{ kind: 'worker-down', id: from }]);
    assert.equal(s.model.resources.get('a')!.assign!.hold, undefined);
  });

  test('what no other worker can take stays, and is counted as remaining', () => {
    const s = setup([['w1', 10, { gpu: 'yes' }], ['w2', 10]]);
    s.addSpec('g', { constraints: [{ key: 'gpu', op: 'exists' }] });
    s.clients(add('plain'));
    const p = s.clients(request({ op: 'drain', worker: 'w1' }));
    assert.equal(on(s.model, 'g'), 'w1');
    assert.ok(s.reply(p).remaining >= 1);
  });
});

describe('rebalance', () => {
  test('a new worker gets load in rounds of at most max and 10% of all, never while a round is in flight', () => {
    const s = setup([['w1', 1000], ['w2', 1000], ['w3', 1000]]);
    for (let i = 0; i < 90; i++) s.clients(add(`r${String(i).padStart(2, '0')}`));
    s.run([{ kind: 'worker-up', id: 'w4', capacity: 1000, epoch: 'L-w4', kinds: ['noop'], labels: {} }]);
    const round = (max: number) => s.run([{ kind: 'rebalance', limits: { max, fraction: 0.1 } }]);
    const r1 = round(5);
    const moves1 = r1.events.filter((e) => e.kind === 'resource.moved');
    assert.equal(moves1.length, 5, 'at most max');
    assert.ok(moves1.every((e) => (e.payload as { to: string; reason: string }).to === 'w4' && (e.payload as { reason: string }).reason === 'rebalance'));
    assert.equal(round(5).events.filter((e) => e.kind === 'resource.moved').length, 0, 'no new round while handoffs are in flight');
    // Finish the handoffs, as the old workers would.
    const finishAll = () => {
      for (const [name, e] of s.model.resources) {
        if (e.handoff) s.report(e.handoff.from.worker, [{ type: 'stopped', name, id: e.rec.id, attempt: e.handoff.from.attempt }]);
      }
    };
    finishAll();
    const r3 = round(100);
    assert.equal(r3.events.filter((e) => e.kind === 'resource.moved').length, 9, 'at most 10% of 90');
    for (let i = 0; i < 10; i++) {
      finishAll();
      round(100);
    }
    finishAll();
    const loads = s.model.loads().map((w) => w.resources);
    assert.ok(Math.max(...loads) - Math.min(...loads) <= 1, `within one of even: ${loads}`);
  });

  test('completed resources and spec.rebalance false never move', () => {
    const s = setup([['w1', 100]]);
    s.addSpec('pinned', { rebalance: false });
    for (let i = 0; i < 9; i++) s.clients(add(`x${i}`));
    s.run([{ kind: 'worker-up', id: 'w2', capacity: 100, epoch: 'L-w2', kinds: ['noop'], labels: {} }]);
    const p = s.run([{ kind: 'rebalance', limits: { max: 100, fraction: 1 } }]);
    const moved = p.events.filter((e) => e.kind === 'resource.moved').map((e) => (e.payload as { name: string }).name);
    assert.ok(moved.length > 0);
    assert.ok(!moved.includes('pinned'));
  });
});

describe('constraints, preferences, explain and dry-run', () => {
  test('constraints are hard, preferences soft; an unsatisfiable resource is pending with the rule, placed when a match joins', () => {
    const s = setup([['eu1', 10, { zone: 'eu' }], ['us1', 10, { zone: 'us', ssd: 'yes' }]]);
    s.addSpec('eu-only', { constraints: [{ key: 'zone', op: 'in', values: ['eu'] }] });
    assert.equal(on(s.model, 'eu-only'), 'eu1');
    s.addSpec('likes-ssd', { prefer: [{ key: 'ssd', op: 'exists' }] });
    assert.equal(on(s.model, 'likes-ssd'), 'us1');
    s.addSpec('asia', { constraints: [{ key: 'zone', op: 'in', values: ['asia'] }] });
    const v = s.model.view('asia')!;
    assert.equal(v.state, 'pending');
    assert.match(v.reason!, /eu1, us1: constraint zone in \[asia\]/);
    s.run([{ kind: 'worker-up', id: 'as1', capacity: 10, epoch: 'L-as1', kinds: ['noop'], labels: { zone: 'asia' } }]);
    assert.equal(on(s.model, 'asia'), 'as1');
  });

  test('explain ranks every live worker; dry-run writes nothing and picks what the add picks', () => {
    const s = setup([['a', 10, { zone: 'eu' }], ['b', 10, { zone: 'us' }], ['c', 10, { zone: 'eu' }]]);
    s.clients(request({ op: 'cordon', worker: 'c' }));
    const spec = { constraints: [{ key: 'zone', op: 'in' as const, values: ['eu'] }] };
    const dry = s.clients(request({ op: 'add', name: 'x', spec, dryRun: true }));
    assert.deepEqual(dry.txns.map((t) => t.ops.length), [0], 'nothing written');
    assert.equal(s.model.resources.has('x'), false);
    const d = s.reply(dry);
    assert.equal(d.dryRun, true);
    assert.deepEqual(d.candidates, [
      { worker: 'a', score: 1 },
      { worker: 'b', excluded: 'constraint zone in [eu]' },
      { worker: 'c', excluded: 'cordoned' },
    ]);
    s.addSpec('x', spec);
    assert.equal(on(s.model, 'x'), d.worker, 'the real add agrees');
    const ex = s.reply(s.clients(request({ op: 'explain', name: 'x' })));
    assert.equal(ex.worker, 'a');
    assert.match(ex.reason, /best/);
    assert.equal(s.reply(s.clients(request({ op: 'explain', name: 'nope' }))).error.code, 'NOT_FOUND');
  });
});

describe('handoffs and new incarnations', () => {
  test('a worker that comes back as a new incarnation releases what was leaving its old one', () => {
    const s = setup([['w1', 100], ['w2', 100]]);
    s.clients(add('a'));
    const from = on(s.model, 'a')!;
    s.clients(request({ op: 'drain', worker: from }));
    assert.equal(s.model.resources.get('a')!.assign!.hold, true);
    // The old process died and a new one registered under the same id before its key's deletion was seen.
    s.run([{ kind: 'worker-up', id: from, capacity: 100, epoch: 'L-new', kinds: ['noop'], labels: {} }]);
    assert.equal(s.model.resources.get('a')!.assign!.hold, undefined, 'released: the old incarnation has certainly stopped');
  });
});
