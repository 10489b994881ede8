// plan(): the leader's decision for a batch, without any I/O.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Input } from '#actors/leader/core/batch.js';
import { ClusterState } from '#actors/leader/core/state.js';
import { loadWorker } from '#actors/leader/core/repair.js';
import { workerUp } from '#actors/leader/core/workers.js';
import { move } from '#actors/leader/core/fleet.js';
import { MAX_TXN_OPS } from '#platform/ports.js';
import { FakeClock } from '../fakes/clock.js';
import { add, del, get, request } from '../fakes/requests.js';
import { MemBus } from '../fakes/bus.js';
import { context, planned } from '../fakes/core.js';
import { tick } from '../fakes/tick.js';
import { publishAssigns, type AssignChange } from '#actors/leader/assign-publisher.js';
import { json, packed } from '#protocol/codec.js';
import { keys } from '#protocol/keys.js';
import type { AssignEvent } from '#protocol/messages.js';

const ctx = context({ members: ['m1', 'm2'] });

function setup(workers: Array<[string, number]> = [['w1', 100], ['w2', 100]]) {
  const model = new ClusterState();
  for (const [id, cap] of workers) loadWorker(model, id, cap, `L-${id}`, ['noop']);
  return { model };
}

const clients = (...reqs: ReturnType<typeof add>[]): Input[] => reqs.map((req) => ({ kind: 'client', req }));
const rev = (r: number) => () => r;
/** body reads a reply as the shape a test expects. */
const body = <T>(r: unknown): T => r as T;

describe('plan', () => {
  test('adds become one transaction with resource and assignment keys and the dedupe record; answered with the commit revision', () => {
    const { model } = setup();
    const p = planned(model, clients(add('a'), add('b')), ctx);
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

  test('the same request id twice in one batch runs once and both get the first outcome', () => {
    const { model } = setup();
    const p = planned(model, clients(add('a', { id: 'x' }), add('a', { id: 'x' })), ctx);
    const [r1, r2] = p.replies.map((r) => r.build(rev(5)));
    assert.deepEqual(r1, r2);
    assert.equal(body<{ created: boolean }>(r1).created, true);
  });

  test('a request re-sent after its commit gets its first outcome from dedupe, with no write', () => {
    const { model } = setup();
    const first = planned(model, clients(add('a', { id: 'x' })), ctx);
    model.committed(first.txns[0]!.names, 10);
    model.outcomes.remember(first.txns[0]!.entries, 10, 0);
    const again = planned(model, clients(add('a', { id: 'x' })), ctx);
    const reply = body<{ created: boolean; resource: { revision: number } }>(again.replies[0]!.build(rev(11)));
    assert.equal(reply.created, true, 'the first outcome, not "exists"');
    assert.equal(reply.resource.revision, 10);
    assert.deepEqual(again.txns.map((t) => t.ops.length), [0], 'only a read-only proof of leadership');
  });

  test('a second add of a name under a new id answers created: false; deleting an unknown name is NOT_FOUND', () => {
    const { model } = setup();
    planned(model, clients(add('a')), ctx);
    const p = planned(model, clients(add('a'), del('nope')), ctx);
    const [r1, r2] = p.replies.map((r) => r.build(rev(3)));
    assert.equal(body<{ created: boolean }>(r1).created, false);
    assert.equal(r2!.ok, false);
    assert.equal(body<{ error: { code: string } }>(r2).error.code, 'NOT_FOUND');
  });

  test('reads alone still get a transaction: answered only after a fenced proof that we lead', () => {
    const { model } = setup();
    const p = planned(model, clients(get('a'), request({ op: 'status' })), ctx);
    assert.deepEqual(p.txns, [{ names: [], ops: [], entries: [], assigns: [] }]);
    const status = body<{ leader: string; masters: string[]; workers: unknown[] }>(p.replies[1]!.build(rev(1)));
    assert.equal(status.leader, 'm1');
    assert.deepEqual(status.masters, ['m1', 'm2']);
    assert.equal(status.workers.length, 2);
  });

  test('accepted start and progress reports alone need no transaction; a refusal or a checkpoint waits for proof', () => {
    const { model } = setup([['w1', 10]]);
    planned(model, clients(add('a')), ctx);
    const { id, attempt } = model.resources.get('a')!.rec;
    const rep = (reports: Array<Record<string, unknown>>) => ({ kind: 'client' as const, req: request({ op: 'report', worker: 'w1', epoch: 'L-w1', reports: reports as never }) });
    const started = planned(model, [rep([{ type: 'started', name: 'a', id, attempt }, { type: 'progress', name: 'a', id, attempt, progress: 1 }])], ctx);
    assert.deepEqual(started.txns, []);
    assert.equal(started.replies[0]!.unfenced, true);
    assert.equal(model.view('a')!.state, 'running');
    const refused = planned(model, [rep([{ type: 'started', name: 'a', id, attempt: attempt + 1 }])], ctx);
    assert.equal(refused.txns.length, 1, 'a refusal stops a task: only a leader that proves it leads may say so');
    const cp = planned(model, [rep([{ type: 'checkpoint', name: 'a', id, attempt, seq: 1, state: {} }])], ctx);
    assert.equal(cp.txns.length, 1);
    assert.ok(cp.txns[0]!.ops.length > 0, 'the checkpoint is written');
  });

  test('a large batch is split into transactions within etcd limits, never splitting one resource', () => {
    const { model } = setup([['w1', 10_000]]);
    const p = planned(model, clients(...Array.from({ length: 300 }, (_, i) => add(`r${i}`))), ctx);
    assert.ok(p.txns.length >= 5);
    for (const t of p.txns) assert.ok(t.ops.length <= MAX_TXN_OPS - 1, `txn of ${t.ops.length} ops leaves room for the chain link`);
    const names = p.txns.flatMap((t) => t.names);
    assert.equal(new Set(names).size, 300);
  });

  test('a lost worker: its resources move to the others, announced as moves; a new worker is announced', () => {
    const { model } = setup();
    planned(model, clients(add('a'), add('b'), add('c'), add('d')), ctx);
    const onW1 = [...model.resources.values()].filter((e) => e.rec.worker === 'w1').map((e) => e.rec.name);
    const p = planned(model, [{ kind: 'worker-up', id: 'w3', capacity: 100, epoch: 'L-w3', kinds: ['noop'], labels: {} }, { kind: 'worker-down', id: 'w1' }], ctx);
    assert.deepEqual(p.events.filter((e) => e.kind.startsWith('worker.')).map((e) => e.kind), ['worker.joined', 'worker.lost']);
    const moved = p.events.filter((e) => e.kind === 'resource.moved').map((e) => (e.payload as { name: string }).name);
    assert.deepEqual(moved.sort(), onW1.sort());
    for (const e of model.resources.values()) assert.notEqual(e.rec.worker, 'w1');
  });

  test('a worker we revoked: its work is written elsewhere at once, each start held back until its fence window has passed', () => {
    const { model } = setup([['w1', 100]]);
    planned(model, clients(add('a'), add('b')), { ...ctx, now: 0 });
    workerUp(model, 'w2', 100, 'L-w2', ['noop'], {});
    // Revoked at 1000: w1 may run a and b until 1850.
    const p = planned(model, [{ kind: 'worker-down', id: 'w1', fencedBy: 1850 }], { ...ctx, budget: 1, now: 1000 });
    assert.deepEqual(p.events.filter((e) => e.kind === 'worker.lost').map((e) => e.payload), [{ worker: 'w1' }], 'lost at once');
    const first = p.txns.flatMap((t) => t.assigns).filter((c) => c.type === 'put');
    assert.equal(first.length, 1, 'the budget of 1 takes one move');
    assert.equal(first[0]!.worker, 'w2');
    assert.equal(first[0]!.notBefore, 1850);
    assert.equal(stored(p, 'w2', first[0]!.task.name).delayMs, 850, 'etcd holds the wait left when planned');
    // Heard later, the event says only what is left of the wait.
    assert.equal(heard(first, 1400)[0]!.resource.delayMs, 450);
    assert.equal(heard(first, 1850)[0]!.resource.delayMs, undefined, 'no wait once the window has passed');
    // The next batch takes the other, with what is left of its wait then.
    const q = planned(model, [{ kind: 'reconcile' }], { ...ctx, now: 1300 });
    const second = q.txns.flatMap((t) => t.assigns).filter((c) => c.type === 'put');
    assert.equal(second.length, 1);
    assert.equal(stored(q, 'w2', second[0]!.task.name).delayMs, 550);
  });

  test("the backlog allowance paces a lost worker's moves, not the batch's client requests", () => {
    const { model } = setup([['w1', 100]]);
    planned(model, clients(add('a'), add('b'), add('c')), ctx);
    workerUp(model, 'w2', 100, 'L-w2', ['noop'], {});
    const puts = (p: ReturnType<typeof planned>) => p.txns.flatMap((t) => t.assigns).filter((c) => c.type === 'put').map((c) => c.task.name);
    // Two new resources and the loss of w1, with room for one move.
    const p = planned(model, [...clients(add('d'), add('e')), { kind: 'worker-down', id: 'w1' }], { ...ctx, backlog: 1 });
    assert.deepEqual(puts(p).filter((n) => n === 'd' || n === 'e').sort(), ['d', 'e'], 'client requests are not paced');
    assert.equal(puts(p).filter((n) => 'abc'.includes(n)).length, 1, 'one move');
    assert.equal(p.backlogTouched, 1);
    assert.equal(p.backlog, true, 'the rest waits for a later batch');
    const none = planned(model, [{ kind: 'reconcile' }], { ...ctx, backlog: 0 });
    assert.deepEqual(puts(none), [], 'no allowance, no moves');
    const rest = planned(model, [{ kind: 'reconcile' }], { ...ctx, backlog: 10 });
    assert.equal(puts(rest).length, 2);
    assert.equal(rest.backlog, false);
    assert.equal(model.pending.size, 0);
  });

  test('a fence wait follows a resource written pending, and ends with the window', () => {
    const { model } = setup([['w1', 100]]);
    planned(model, clients(add('a'), add('b')), { ...ctx, now: 0 });
    planned(model, [{ kind: 'worker-down', id: 'w1', fencedBy: 1850 }], { ...ctx, now: 1000 });
    assert.equal(model.view('a')!.worker, null, 'pending: no other worker');
    const p = planned(model, [{ kind: 'worker-up', id: 'w2', capacity: 1, epoch: 'L-w2', kinds: ['noop'], labels: {} }], { ...ctx, now: 1500 });
    const placed = p.txns.flatMap((t) => t.assigns).filter((c) => c.type === 'put');
    assert.equal(placed.length, 1);
    assert.equal(stored(p, 'w2', placed[0]!.task.name).delayMs, 350);
    const q = planned(model, [{ kind: 'worker-up', id: 'w3', capacity: 1, epoch: 'L-w3', kinds: ['noop'], labels: {} }], { ...ctx, now: 1900 });
    const late = q.txns.flatMap((t) => t.assigns).filter((c) => c.type === 'put');
    assert.equal(late.length, 1);
    assert.equal(stored(q, 'w3', late[0]!.task.name).delayMs, undefined, 'the window has passed');
    assert.equal(late[0]!.notBefore, undefined);
  });

  test('a handoff leaving a worker we revoked is released with the fence wait; a lease that expired needs none', () => {
    const { model } = setup([['w1', 100], ['w2', 100]]);
    planned(model, clients(add('a')), { ...ctx, now: 0 });
    const from = model.view('a')!.worker!;
    const to = from === 'w1' ? 'w2' : 'w1';
    move(model, 'a', model.workers.get(to)!, 'rebalance');
    planned(model, [{ kind: 'reconcile' }], { ...ctx, now: 10 });
    assert.equal(model.resources.get('a')!.assign!.hold, true);
    const p = planned(model, [{ kind: 'worker-down', id: from, fencedBy: 900 }], { ...ctx, now: 100 });
    const v = stored(p, to, 'a');
    assert.equal(v.hold, undefined, 'released');
    assert.equal(v.delayMs, 800);
    // The new owner is lost too, its lease expired: the first one's wait still holds wherever `a` goes.
    planned(model, [{ kind: 'worker-down', id: to }], { ...ctx, now: 200 });
    const r = planned(model, [{ kind: 'worker-up', id: 'w9', capacity: 5, epoch: 'L-w9', kinds: ['noop'], labels: {} }], { ...ctx, now: 300 });
    assert.equal(stored(r, 'w9', 'a').delayMs, 600);
  });

  test('a worker whose lease expired on its own (longer than its fence window): its work starts elsewhere at once', () => {
    const { model } = setup([['w1', 100]]);
    planned(model, clients(add('a')), { ...ctx, now: 0 });
    workerUp(model, 'w2', 100, 'L-w2', ['noop'], {});
    const p = planned(model, [{ kind: 'worker-down', id: 'w1' }], { ...ctx, now: 100 });
    assert.equal(stored(p, 'w2', 'a').delayMs, undefined);
    assert.equal(p.txns.flatMap((t) => t.assigns).find((c) => c.type === 'put')!.notBefore, undefined);
  });
});

/** stored is the assignment value a plan writes for `name` on `worker`. */
function stored(p: ReturnType<typeof planned>, worker: string, name: string): { delayMs?: number; hold?: boolean } {
  const op = p.txns.flatMap((t) => t.ops).find((o) => 'put' in o && o.put === keys.assignment(worker, name));
  return (op && 'put' in op ? packed.decode(op.value) : undefined) as { delayMs?: number; hold?: boolean };
}

/** heard is what workers get on worker.<id>.assign for `changes` published at `now`. */
function heard(changes: AssignChange[], now: number): AssignEvent[] {
  const bus = new MemBus(new FakeClock());
  publishAssigns(bus, changes, 9, now);
  return bus.published.map((m) => json.decode(m.data) as AssignEvent);
}

// --- the task lifecycle ------------------------------------------------------

const report = (worker: string, epoch: string, reports: Array<Record<string, unknown>>) =>
  request({ op: 'report', worker, epoch, reports: reports as never });

describe('plan: task reports and the lifecycle', () => {
  function placed(spec: Record<string, unknown> = {}, workers: Array<[string, number]> = [['w1', 100], ['w2', 100], ['w3', 100]]) {
    const s = setup(workers);
    const p = planned(s.model, clients(request({ op: 'add', name: 'a', spec: spec as never })), ctx);
    s.model.committed(p.txns[0]!.names, 2);
    const e = s.model.resources.get('a')!;
    return { ...s, e, worker: e.rec.worker!, epoch: e.assign!.epoch };
  }
  const results = (p: ReturnType<typeof planned>) => body<{ results: Array<{ ok: boolean; error?: { code: string } }> }>(p.replies[0]!.build(rev(9))).results;
  const eventKinds = (p: ReturnType<typeof planned>) => p.events.map((e) => e.kind);

  test('started: running, in memory only (nothing written)', () => {
    const { model, e, worker, epoch } = placed();
    const p = planned(model, [{ kind: 'client', req: report(worker, epoch, [{ type: 'started', name: 'a', id: e.rec.id, attempt: 1 }]) }], ctx);
    assert.deepEqual(results(p), [{ ok: true }]);
    assert.equal(model.view('a')!.state, 'running');
    assert.deepEqual(p.txns, [], 'not even a proof that we lead');
  });

  test('a report from another incarnation, another worker or another attempt is refused as NOT_OWNER', () => {
    const { model, e, worker, epoch } = placed();
    const bad = [
      report(worker, 'OLD', [{ type: 'checkpoint', name: 'a', id: e.rec.id, attempt: 1, seq: 1, state: { x: 1 } }]),
      report('w9', epoch, [{ type: 'completed', name: 'a', id: e.rec.id, attempt: 1 }]),
      report(worker, epoch, [{ type: 'failed', name: 'a', id: e.rec.id, attempt: 2, error: 'x' }]),
      report(worker, epoch, [{ type: 'started', name: 'a', id: 'other-id', attempt: 1 }]),
    ];
    const p = planned(model, bad.map((req) => ({ kind: 'client' as const, req })), ctx);
    for (const r of p.replies) assert.equal(body<{ results: Array<{ error: { code: string } }> }>(r.build(rev(1))).results[0]!.error.code, 'NOT_OWNER');
    assert.equal(model.view('a')!.state, 'starting');
    assert.deepEqual(p.txns.map((t) => t.ops.length), [0], 'nothing written');
  });

  test('checkpoint: written with the record, and a late duplicate never overwrites a newer one', () => {
    const { model, e, worker, epoch } = placed();
    const cp = (seq: number) => ({ type: 'checkpoint', name: 'a', id: e.rec.id, attempt: 1, seq, state: { seq } });
    const p1 = planned(model, [{ kind: 'client', req: report(worker, epoch, [cp(2)]) }], ctx);
    const put = p1.txns[0]!.ops.find((op) => 'put' in op && op.put === 'gaffer/checkpoints/a');
    assert.ok(put, 'the checkpoint is written');
    const p2 = planned(model, [{ kind: 'client', req: report(worker, epoch, [cp(1)]) }], ctx);
    assert.deepEqual(results(p2), [{ ok: true }], 'accepted (idempotent), but...');
    assert.equal(p2.txns[0]!.ops.filter((op) => 'put' in op && op.put === 'gaffer/checkpoints/a').length, 0, '...not written');
  });

  test('completed: the result is kept, the worker freed, and it does not run again', () => {
    const { model, e, worker, epoch } = placed();
    const p = planned(model, [{ kind: 'client', req: report(worker, epoch, [{ type: 'completed', name: 'a', id: e.rec.id, attempt: 1, result: { pages: 3 } }]) }], ctx);
    const v = model.view('a')!;
    assert.deepEqual([v.state, v.worker, v.result], ['completed', null, { pages: 3 }]);
    assert.equal(model.pending.has('a'), false);
    assert.ok(p.txns[0]!.ops.some((op) => 'del' in op && op.del === `gaffer/assign/${worker}/a`), 'unassigned');
    assert.deepEqual(eventKinds(p), ['task.completed']);
  });

  test('failures restart on the same worker, then elsewhere, with doubling backoff, until attempts run out', () => {
    const { model, e, worker: first } = placed({ restart: { attempts: 3, delayMs: 100, maxDelayMs: 1000 } });
    const id = e.rec.id;
    const seen: Array<{ worker: string | null; delayMs?: number; state: string }> = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const cur = model.resources.get('a')!;
      const p = planned(model, [{ kind: 'client', req: report(cur.rec.worker!, cur.assign!.epoch, [{ type: 'failed', name: 'a', id, attempt, error: `boom ${attempt}` }]) }], ctx);
      assert.deepEqual(results(p), [{ ok: true }]);
      const after = model.resources.get('a')!;
      seen.push({ worker: after.rec.worker, state: after.rec.state, ...(after.assign?.delayMs ? { delayMs: after.assign.delayMs } : {}) });
      const tasks = eventKinds(p).filter((k) => k.startsWith('task.'));
      if (attempt < 3) assert.deepEqual(tasks, ['task.failed', 'task.restarting']);
      else assert.deepEqual(tasks, ['task.failed']);
      if (attempt === 2) assert.ok(eventKinds(p).includes('resource.moved'), 'a reschedule is a move');
    }
    assert.equal(seen[0]!.worker, first, 'the first failure restarts on the same worker');
    assert.notEqual(seen[1]!.worker, first, 'the second goes elsewhere');
    assert.ok(seen[0]!.delayMs! >= 75 && seen[0]!.delayMs! <= 100, `first backoff ~100 ms less jitter, got ${seen[0]!.delayMs}`);
    assert.ok(seen[1]!.delayMs! >= 150 && seen[1]!.delayMs! <= 200, `doubled, got ${seen[1]!.delayMs}`);
    assert.deepEqual([seen[2]!.state, seen[2]!.worker], ['failed', null]);
    const v = model.view('a')!;
    assert.deepEqual([v.failures, v.attempt, v.error], [3, 3, 'boom 3']);
  });

  test('a worker that dies is not a failure: the attempt grows, failures do not', () => {
    const { model, worker } = placed();
    planned(model, [{ kind: 'worker-down', id: worker }], ctx);
    const v = model.view('a')!;
    assert.notEqual(v.worker, worker);
    assert.deepEqual([v.attempt, v.failures, v.state], [2, 0, 'starting']);
  });

  test('resource.restart runs a completed or failed resource again with failures reset; others CONFLICT, unknown NOT_FOUND', () => {
    // One attempt only: its first failure leaves it failed.
    const { model, e, worker, epoch } = placed({ restart: { attempts: 1 } });
    const early = planned(model, clients(request({ op: 'restart', name: 'a' }), request({ op: 'restart', name: 'zz' })), ctx);
    assert.deepEqual(early.replies.map((r) => body<{ error: { code: string } }>(r.build(rev(1))).error.code), ['CONFLICT', 'NOT_FOUND']);
    planned(model, [{ kind: 'client', req: report(worker, epoch, [{ type: 'failed', name: 'a', id: e.rec.id, attempt: 1, error: 'x' }]) }], ctx);
    assert.deepEqual([model.view('a')!.state, model.view('a')!.worker], ['failed', null]);
    const p = planned(model, clients(request({ op: 'restart', name: 'a' })), ctx);
    const v = body<{ resource: { state: string; failures: number; attempt: number } }>(p.replies[0]!.build(rev(5))).resource;
    assert.deepEqual([v.state, v.failures], ['starting', 0]);
  });

  test('an unknown kind is pending with a reason, and placed when a worker that runs it joins', () => {
    const { model } = setup();
    planned(model, clients(request({ op: 'add', name: 'k', spec: { kind: 'crawl2' } })), ctx);
    assert.deepEqual([model.view('k')!.state, model.view('k')!.reason], ['pending', 'no live worker runs kind crawl2']);
    planned(model, [{ kind: 'worker-up', id: 'w9', capacity: 10, epoch: 'L9', kinds: ['noop', 'crawl2'], labels: {} }], ctx);
    assert.deepEqual([model.view('k')!.state, model.view('k')!.worker], ['starting', 'w9']);
  });
});

// --- purity ------------------------------------------------------------------

describe('plan is a function of the state, the batch and the tick', () => {
  const WORKERS = ['w1', 'w2', 'w3'];
  const NAMES = ['a', 'b', 'c', 'd'];
  const input: fc.Arbitrary<Input> = fc.oneof(
    fc.constantFrom(...NAMES).map((n): Input => ({ kind: 'client', req: add(n, { id: `add-${n}` }) })),
    fc.constantFrom(...NAMES).map((n): Input => ({ kind: 'client', req: del(n, { id: `del-${n}` }) })),
    fc.constantFrom(...WORKERS).map((id): Input => ({ kind: 'worker-down', id, fencedBy: 500 })),
    fc.tuple(fc.constantFrom(...WORKERS), fc.nat(2)).map(([id, inc]): Input => ({ kind: 'worker-up', id, capacity: 2, epoch: `L-${id}-${inc}`, kinds: ['noop'], labels: {} })),
    fc.constant<Input>({ kind: 'rebalance', limits: { max: 2, fraction: 1 } }),
  );

  test('the same batches on the same state with the same ticks give the same plans', () => {
    fc.assert(
      fc.property(fc.array(fc.array(input, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 12 }), fc.double({ min: 0, max: 0.999, noNaN: true }), (batches, random) => {
        const run = () => {
          const s = new ClusterState();
          loadWorker(s, 'w1', 2, 'L-w1-0', ['noop']);
          const ids = { n: 0 };
          return batches.map((batch, i) => {
            const p = planned(s, batch, context({ ...tick(i * 100, random, ids), budget: 3 }));
            return { txns: p.txns.map((t) => ({ ...t, ops: t.ops.map((op) => ('put' in op ? { put: op.put, value: [...op.value] } : op)) })), events: p.events, backlog: p.backlog, handoffs: p.handoffs, replies: p.replies.map((r) => r.build(() => 1)) };
          });
        };
        assert.deepEqual(run(), run());
      }),
      { numRuns: 100 },
    );
  });
});
