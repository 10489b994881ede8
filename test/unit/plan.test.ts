// plan(): the leader's decision for a batch, without any I/O.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { plan, type Input } from '../../actors/leader/plan.js';
import { ClusterState } from '../../actors/leader/model.js';
import { Dedupe } from '../../actors/leader/dedupe.js';
import { MAX_TXN_OPS } from '../../src/platform/ports.js';
import { FakeClock } from '../fakes/clock.js';
import { MemStore } from '../fakes/store.js';
import { add, del, get, request } from '../fakes/requests.js';

const ctx = { leaderId: 'm1', members: ['m1', 'm2'] };

async function setup(workers: Array<[string, number]> = [['w1', 100], ['w2', 100]]) {
  const clock = new FakeClock();
  const store = new MemStore(clock);
  const dedupe = new Dedupe(store, 7, clock);
  await dedupe.renew();
  const model = new ClusterState(7);
  for (const [id, cap] of workers) model.loadWorker(id, cap, `L-${id}`);
  return { model, dedupe };
}

const clients = (...reqs: ReturnType<typeof add>[]): Input[] => reqs.map((req) => ({ kind: 'client', req }));
const rev = (r: number) => () => r;
/** body reads a reply as the shape a test expects. */
const body = <T>(r: unknown): T => r as T;

describe('plan', () => {
  test('adds become one transaction with resource and assignment keys and the dedupe record; answered with the commit revision', async () => {
    const { model, dedupe } = await setup();
    const p = plan(model, dedupe, clients(add('a'), add('b')), ctx);
    assert.equal(p.txns.length, 1);
    const keys = p.txns[0]!.ops.map((op) => ('put' in op ? op.put : op.del));
    assert.ok(keys.includes('gaffer/resources/a') && keys.includes('gaffer/resources/b'));
    assert.equal(keys.filter((k) => k.startsWith('gaffer/assign/')).length, 2);
    assert.equal(keys.filter((k) => k.startsWith('gaffer/dedupe/7/')).length, 1, 'one dedupe record per transaction');
    assert.deepEqual(p.txns[0]!.names.sort(), ['a', 'b']);
    const reply = p.replies[0]!.build(rev(42));
    assert.equal(reply.ok, true);
    assert.equal(body<{ created: boolean }>(reply).created, true);
    assert.equal(body<{ resource: { revision: number } }>(reply).resource.revision, 42);
    assert.deepEqual(p.events.map((e) => e.kind), ['resource.placed', 'resource.placed']);
  });

  test('the same request id twice in one batch runs once and both get the first outcome', async () => {
    const { model, dedupe } = await setup();
    const p = plan(model, dedupe, clients(add('a', { id: 'x' }), add('a', { id: 'x' })), ctx);
    const [r1, r2] = p.replies.map((r) => r.build(rev(5)));
    assert.deepEqual(r1, r2);
    assert.equal(body<{ created: boolean }>(r1).created, true);
  });

  test('a request re-sent after its commit gets its first outcome from dedupe, with no write', async () => {
    const { model, dedupe } = await setup();
    const first = plan(model, dedupe, clients(add('a', { id: 'x' })), ctx);
    model.committed(first.txns[0]!.names, 10);
    dedupe.remember(first.txns[0]!.entries, 10);
    const again = plan(model, dedupe, clients(add('a', { id: 'x' })), ctx);
    const reply = body<{ created: boolean; resource: { revision: number } }>(again.replies[0]!.build(rev(11)));
    assert.equal(reply.created, true, 'the first outcome, not "exists"');
    assert.equal(reply.resource.revision, 10);
    assert.deepEqual(again.txns.map((t) => t.ops.length), [0], 'only a read-only proof of leadership');
  });

  test('a second add of a name under a new id answers created: false; deleting an unknown name is NOT_FOUND', async () => {
    const { model, dedupe } = await setup();
    plan(model, dedupe, clients(add('a')), ctx);
    const p = plan(model, dedupe, clients(add('a'), del('nope')), ctx);
    const [r1, r2] = p.replies.map((r) => r.build(rev(3)));
    assert.equal(body<{ created: boolean }>(r1).created, false);
    assert.equal(r2!.ok, false);
    assert.equal(body<{ error: { code: string } }>(r2).error.code, 'NOT_FOUND');
  });

  test('reads alone still get a transaction: answered only after a fenced proof that we lead', async () => {
    const { model, dedupe } = await setup();
    const p = plan(model, dedupe, clients(get('a'), request({ op: 'status' })), ctx);
    assert.deepEqual(p.txns, [{ names: [], ops: [], entries: [] }]);
    const status = body<{ leader: string; masters: string[]; workers: unknown[] }>(p.replies[1]!.build(rev(1)));
    assert.equal(status.leader, 'm1');
    assert.deepEqual(status.masters, ['m1', 'm2']);
    assert.equal(status.workers.length, 2);
  });

  test('a large batch is split into transactions within etcd limits, never splitting one resource', async () => {
    const { model, dedupe } = await setup([['w1', 10_000]]);
    const p = plan(model, dedupe, clients(...Array.from({ length: 300 }, (_, i) => add(`r${i}`))), ctx);
    assert.ok(p.txns.length >= 5);
    for (const t of p.txns) assert.ok(t.ops.length <= MAX_TXN_OPS - 1, `txn of ${t.ops.length} ops leaves room for the chain link`);
    const names = p.txns.flatMap((t) => t.names);
    assert.equal(new Set(names).size, 300);
  });

  test('a lost worker: its resources move to the others, announced as moves; a new worker is announced', async () => {
    const { model, dedupe } = await setup();
    plan(model, dedupe, clients(add('a'), add('b'), add('c'), add('d')), ctx);
    const onW1 = [...model.resources.values()].filter((e) => e.rec.worker === 'w1').map((e) => e.rec.name);
    const p = plan(model, dedupe, [{ kind: 'worker-up', id: 'w3', capacity: 100, epoch: 'L-w3' }, { kind: 'worker-down', id: 'w1' }], ctx);
    assert.deepEqual(p.events.filter((e) => e.kind.startsWith('worker.')).map((e) => e.kind), ['worker.joined', 'worker.lost']);
    const moved = p.events.filter((e) => e.kind === 'resource.moved').map((e) => (e.payload as { name: string }).name);
    assert.deepEqual(moved.sort(), onW1.sort());
    for (const e of model.resources.values()) assert.notEqual(e.rec.worker, 'w1');
  });

  test('a suspect worker keeps its resources but takes nothing new', async () => {
    const { model, dedupe } = await setup([['w1', 100]]);
    plan(model, dedupe, clients(add('a')), ctx);
    plan(model, dedupe, [{ kind: 'worker-suspect', id: 'w1' }], ctx);
    plan(model, dedupe, clients(add('b')), ctx);
    assert.equal(model.view('a')!.worker, 'w1');
    assert.equal(model.view('b')!.worker, null, 'pending: the only worker is suspect');
  });
});
