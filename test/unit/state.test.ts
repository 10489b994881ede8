// The core's rules called one by one on a ClusterState, and what the encoder
// writes for them: adds and removes, workers lost and back, batch budgets,
// repair after a load, and etcd kept equal to the state under random batches.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterState } from '#actors/leader/core/state.js';
import { add, remove } from '#actors/leader/core/resources.js';
import { reattempts, workerDown, workerUp } from '#actors/leader/core/workers.js';
import { loadResource, loadWorker, repair, restamps } from '#actors/leader/core/repair.js';
import { placePending } from '#actors/leader/core/placement.js';
import { report } from '#actors/leader/core/reports.js';
import { move } from '#actors/leader/core/fleet.js';
import { assignedTask, chunk, type Unit } from '#actors/leader/encode.js';
import { flush } from '../fakes/core.js';
import { tick } from '../fakes/tick.js';
import type { StoredAssignment } from '#protocol/stored.js';
import { keys, parseKey } from '#protocol/keys.js';
import { packed } from '#protocol/codec.js';
import type { Op } from '#platform/ports.js';
import type { StoredResource } from '#protocol/stored.js';
import { seededRandom } from '#harness/rng.js';

// --- helpers ---------------------------------------------------------------

const fresh = (): ClusterState => new ClusterState();
const T = tick();
/** list is every resource, in name order. */
const list = (s: ClusterState) => s.page(undefined, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER).resources;
const EPOCH0 = new Date(0);

const rec = (name: string, worker: string | null): StoredResource => ({
  name,
  id: `id-${name}`,
  worker,
  spec: {},
  createdAt: EPOCH0.toISOString(),
  state: worker ? 'running' : 'pending',
  attempt: 1,
  failures: 0,
});
const NOOP = ['noop'];

/** loaded builds a state as the leader's load() would: workers first, then resources with their assignment keys. */
function loaded(
  workers: Array<[id: string, capacity: number, epoch: string]>,
  resources: Array<[name: string, worker: string | null]>,
): ClusterState {
  const s = fresh();
  for (const [id, cap, epoch] of workers) loadWorker(s, id, cap, epoch, NOOP);
  for (const [name, worker] of resources) {
    const w = workers.find(([id]) => id === worker);
    loadResource(s, rec(name, worker), 10, w && { worker: w[0], epoch: w[2], attempt: 1 });
  }
  return s;
}

const keyOf = (op: Op): string => ('put' in op ? op.put : op.del);
const show = (op: Op): string => `${'put' in op ? 'put' : 'del'} ${keyOf(op)}`;
/** opsByName renders a flush as name -> ["put <key>", "del <key>", ...], in emitted order. */
const opsByName = (units: Unit[]): Record<string, string[]> =>
  Object.fromEntries(units.map((u) => [u.name, u.ops.map(show)]));
const valueOf = (units: Unit[], key: string): unknown => {
  for (const u of units) for (const op of u.ops) if ('put' in op && op.put === key) return packed.decode(op.value);
  return undefined;
};
const workerOf = (s: ClusterState, name: string): string | null | undefined => s.view(name)?.worker;

// --- add / remove ------------------------------------------------------------

describe('add', () => {
  test('creates once; a second add of the same name is a no-op that reports created=false', () => {
    const s = loaded([['w1', 10, 'L1']], []);
    assert.equal(add(s, 'a', { kind: 'noop' }, T), true);
    const first = s.view('a');
    assert.equal(add(s, 'a', { other: 1 }, T), false);
    // The second add must not replace the record (new id, new spec) within the same batch...
    assert.deepEqual(s.view('a'), first);
    const units = flush(s);
    assert.deepEqual(opsByName(units), { a: ['put gaffer/resources/a', 'put gaffer/assign/w1/a'] });
    // ...nor in a later one.
    assert.equal(add(s, 'a', { other: 2 }, T), false);
    assert.deepEqual(flush(s), []);
  });

  test('the stored record carries the resource and its assignment\'s epoch; the assignment is one attempt for one incarnation', () => {
    const s = loaded([['w1', 10, 'L1']], []);
    add(s, 'a.b', { kind: 'noop' }, T);
    const units = flush(s);
    const stored = valueOf(units, keys.resource('a.b')) as StoredResource;
    assert.equal(stored.name, 'a.b');
    assert.equal(stored.worker, 'w1');
    assert.deepEqual(stored.spec, { kind: 'noop' });
    assert.equal(new Date(stored.createdAt).toISOString(), stored.createdAt);
    assert.match(stored.id, /^[0-9a-f-]{36}$/);
    assert.equal(stored.state, 'starting');
    assert.equal(stored.attempt, 1);
    const { name, id, worker, spec, createdAt } = stored;
    assert.deepEqual(valueOf(units, keys.assignment('w1', 'a.b')), { name, id, worker, spec, createdAt, attempt: 1, epoch: 'L1', term: 0 });
    // A new resource has no revision until committed.
    assert.equal(s.view('a.b')?.revision, 0);
    s.committed(['a.b'], 42);
    assert.equal(s.view('a.b')?.revision, 42);
  });

  test('with no workers the resource stays pending, and workerUp places it', () => {
    const s = fresh();
    add(s, 'a', {}, T);
    assert.equal(workerOf(s, 'a'), null);
    assert.deepEqual([...s.pending], ['a']);
    const u1 = flush(s);
    assert.deepEqual(opsByName(u1), { a: ['put gaffer/resources/a'] });
    assert.equal((valueOf(u1, keys.resource('a')) as StoredResource).worker, null);

    workerUp(s, 'w1', 5, 'L1', NOOP);
    assert.equal(workerOf(s, 'a'), 'w1');
    assert.equal(s.pending.size, 0);
    const u2 = flush(s);
    assert.deepEqual(opsByName(u2), { a: ['put gaffer/resources/a', 'put gaffer/assign/w1/a'] });
    assert.equal((valueOf(u2, keys.assignment('w1', 'a')) as StoredAssignment).epoch, 'L1');
  });

  test('places on the least-loaded worker and leaves the rest pending when all are full', () => {
    const s = loaded(
      [
        ['w1', 2, 'L1'],
        ['w2', 1, 'L2'],
      ],
      [['x', 'w1']],
    );
    add(s, 'a', {}, T); // w1 1/2 vs w2 0/1 -> w2
    add(s, 'b', {}, T); // w2 full -> w1
    add(s, 'c', {}, T); // everyone full
    assert.deepEqual([workerOf(s, 'a'), workerOf(s, 'b'), workerOf(s, 'c')], ['w2', 'w1', null]);
    assert.deepEqual([...s.pending], ['c']);
    assert.deepEqual(s.loads(), [
      { id: 'w1', capacity: 2, resources: 2, kinds: ['noop'], labels: {}, cordoned: false, draining: false },
      { id: 'w2', capacity: 1, resources: 1, kinds: ['noop'], labels: {}, cordoned: false, draining: false },
    ]);
  });
});

describe('remove', () => {
  test('a placed resource: deletes its resource key and its assignment key', () => {
    const s = loaded([['w1', 10, 'L1']], [['a', 'w1']]);
    const gone = remove(s, 'a');
    assert.deepEqual(gone, { ...rec('a', 'w1'), revision: 10 });
    assert.equal(s.view('a'), undefined);
    assert.deepEqual(s.loads(), [{ id: 'w1', capacity: 10, resources: 0, kinds: ['noop'], labels: {}, cordoned: false, draining: false }]);
    assert.deepEqual(opsByName(flush(s)), { a: ['del gaffer/resources/a', 'del gaffer/assign/w1/a'] });
  });

  test('a pending resource: deletes only its resource key', () => {
    const s = loaded([], [['a', null]]);
    remove(s, 'a');
    assert.equal(s.pending.size, 0);
    assert.deepEqual(opsByName(flush(s)), { a: ['del gaffer/resources/a'] });
  });

  test('an unknown name returns undefined and changes nothing', () => {
    const s = loaded([['w1', 10, 'L1']], [['a', 'w1']]);
    assert.equal(remove(s, 'nope'), undefined);
    assert.deepEqual(flush(s), []);
  });

  test('add then remove of a new name in one batch emits no operations at all', () => {
    const s = loaded([['w1', 10, 'L1']], []);
    add(s, 'a', {}, T);
    remove(s, 'a');
    assert.deepEqual(flush(s), []);
    assert.deepEqual(s.loads(), [{ id: 'w1', capacity: 10, resources: 0, kinds: ['noop'], labels: {}, cordoned: false, draining: false }]);
  });

  test('remove then add of an existing name in one batch rewrites it, with a new id', () => {
    const s = loaded(
      [
        ['w1', 10, 'L1'],
        ['w2', 10, 'L2'],
      ],
      [
        ['a', 'w1'],
        ['b', 'w1'],
      ],
    );
    remove(s, 'a');
    add(s, 'a', { v: 2 }, T); // w1 holds b, so a goes to w2
    const units = flush(s);
    assert.deepEqual(opsByName(units), {
      a: ['put gaffer/resources/a', 'del gaffer/assign/w1/a', 'put gaffer/assign/w2/a'],
    });
    const stored = valueOf(units, keys.resource('a')) as StoredResource;
    assert.notEqual(stored.id, 'id-a');
    assert.deepEqual(stored.spec, { v: 2 });
  });
});

// --- workers -----------------------------------------------------------------

describe('workerDown', () => {
  test("moves each of the worker's resources to the least-loaded live worker", () => {
    const s = loaded(
      [
        ['w1', 10, 'L1'],
        ['w2', 10, 'L2'],
        ['w3', 10, 'L3'],
      ],
      [
        ['a', 'w1'],
        ['b', 'w1'],
        ['c', 'w1'],
        ['d', 'w2'],
      ],
    );
    workerDown(s, 'w1');
    // a -> w3 (0 vs 1); b -> w2 (1 vs 1, smaller id); c -> w3 (2 vs 1).
    assert.deepEqual(['a', 'b', 'c', 'd'].map((n) => workerOf(s, n)), ['w3', 'w2', 'w3', 'w2']);
    assert.deepEqual(s.loads(), [
      { id: 'w2', capacity: 10, resources: 2, kinds: ['noop'], labels: {}, cordoned: false, draining: false },
      { id: 'w3', capacity: 10, resources: 2, kinds: ['noop'], labels: {}, cordoned: false, draining: false },
    ]);
    const units = flush(s);
    assert.deepEqual(opsByName(units), {
      a: ['put gaffer/resources/a', 'del gaffer/assign/w1/a', 'put gaffer/assign/w3/a'],
      b: ['put gaffer/resources/b', 'del gaffer/assign/w1/b', 'put gaffer/assign/w2/b'],
      c: ['put gaffer/resources/c', 'del gaffer/assign/w1/c', 'put gaffer/assign/w3/c'],
    });
    // The new assignment is stamped with the new worker's epoch.
    assert.equal((valueOf(units, keys.assignment('w3', 'a')) as StoredAssignment).epoch, 'L3');
    assert.equal((valueOf(units, keys.assignment('w2', 'b')) as StoredAssignment).epoch, 'L2');
  });

  test('skips full workers, and what does not fit goes pending', () => {
    const s = loaded(
      [
        ['w1', 10, 'L1'],
        ['w2', 1, 'L2'],
        ['w3', 2, 'L3'],
      ],
      [
        ['a', 'w1'],
        ['b', 'w1'],
        ['c', 'w1'],
        ['d', 'w2'],
      ],
    );
    workerDown(s, 'w1');
    assert.deepEqual(['a', 'b', 'c'].map((n) => workerOf(s, n)), ['w3', 'w3', null]);
    assert.deepEqual([...s.pending], ['c']);
    assert.deepEqual(opsByName(flush(s)).c, ['put gaffer/resources/c', 'del gaffer/assign/w1/c']);
  });

  test('with no live worker left, everything goes pending and loses its assignment key', () => {
    const s = loaded([['w1', 10, 'L1']], [['a', 'w1'], ['b', 'w1']]);
    workerDown(s, 'w1');
    assert.deepEqual(s.loads(), []);
    assert.deepEqual([...s.pending].sort(), ['a', 'b']);
    assert.equal(workerOf(s, 'a'), null);
    const units = flush(s);
    assert.deepEqual(opsByName(units), {
      a: ['put gaffer/resources/a', 'del gaffer/assign/w1/a'],
      b: ['put gaffer/resources/b', 'del gaffer/assign/w1/b'],
    });
    assert.equal((valueOf(units, keys.resource('a')) as StoredResource).worker, null);
  });

  test('an unknown worker is ignored', () => {
    const s = loaded([['w1', 10, 'L1']], [['a', 'w1']]);
    workerDown(s, 'w9');
    assert.deepEqual(flush(s), []);
  });

  test('down then up again in one batch: the resource ends where it started, written once', () => {
    const s = loaded([['w1', 10, 'L1']], [['a', 'w1']]);
    workerDown(s, 'w1');
    workerUp(s, 'w1', 10, 'L1b', NOOP);
    assert.equal(workerOf(s, 'a'), 'w1');
    // Same worker before and after, so no delete; the put carries the new lease.
    const units = flush(s);
    assert.deepEqual(opsByName(units), { a: ['put gaffer/resources/a', 'put gaffer/assign/w1/a'] });
    assert.equal((valueOf(units, keys.assignment('w1', 'a')) as StoredAssignment).epoch, 'L1b');
  });
});

describe('workerUp', () => {
  test('a new epoch (lease) re-stamps every assignment key of that worker, in place', () => {
    const s = loaded(
      [
        ['w1', 10, 'L1'],
        ['w2', 10, 'L2'],
      ],
      [
        ['a', 'w1'],
        ['b', 'w1'],
        ['c', 'w2'],
      ],
    );
    workerUp(s, 'w1', 10, 'L1-new', NOOP);
    const units = flush(s);
    assert.deepEqual(opsByName(units), {
      a: ['put gaffer/resources/a', 'put gaffer/assign/w1/a'],
      b: ['put gaffer/resources/b', 'put gaffer/assign/w1/b'],
    });
    for (const n of ['a', 'b']) {
      assert.equal((valueOf(units, keys.assignment('w1', n)) as StoredAssignment).epoch, 'L1-new');
    }
    // Nothing moved.
    assert.deepEqual(['a', 'b', 'c'].map((n) => workerOf(s, n)), ['w1', 'w1', 'w2']);
  });

  test('the same epoch again is a no-op', () => {
    const s = loaded([['w1', 10, 'L1']], [['a', 'w1']]);
    workerUp(s, 'w1', 10, 'L1', NOOP);
    assert.deepEqual(flush(s), []);
  });

  test('more capacity on a known worker places pending work', () => {
    const s = loaded([['w1', 1, 'L1']], [['a', 'w1'], ['b', null]]);
    assert.deepEqual([...s.pending], ['b']);
    workerUp(s, 'w1', 2, 'L1', NOOP);
    assert.equal(workerOf(s, 'b'), 'w1');
    assert.deepEqual(opsByName(flush(s)), { b: ['put gaffer/resources/b', 'put gaffer/assign/w1/b'] });
  });

  test('a new worker takes pending work up to its capacity', () => {
    const s = loaded([], [['a', null], ['b', null], ['c', null]]);
    workerUp(s, 'w1', 2, 'L1', NOOP);
    assert.equal(s.pending.size, 1);
    assert.deepEqual(s.loads(), [{ id: 'w1', capacity: 2, resources: 2, kinds: ['noop'], labels: {}, cordoned: false, draining: false }]);
  });
});

// --- repair ------------------------------------------------------------------

describe('batch budget', () => {
  /** drain plans empty batches of `budget` until nothing is left, and returns each batch's unit count. */
  const drain = (s: ClusterState, budget: number): number[] => {
    const sizes: number[] = [];
    for (let i = 0; i < 100; i++) {
      s.begin(budget, 0);
      restamps(s);
      reattempts(s);
      placePending(s);
      sizes.push(flush(s).length);
      if (!s.cut) return sizes;
    }
    throw new Error('the backlog never emptied');
  };

  /** filled: a model with w1 (lease L1) holding r0..r{n-1}, all written. */
  const filled = (n: number): ClusterState => {
    const s = fresh();
    workerUp(s, 'w1', 1000, 'L1', NOOP);
    for (let i = 0; i < n; i++) add(s, `r${i}`, {}, T);
    placePending(s);
    flush(s);
    return s;
  };

  test("a lost worker's resources move over several batches; its reports are refused meanwhile", () => {
    const s = filled(40);
    workerUp(s, 'w2', 1000, 'L2', NOOP);
    flush(s);
    const onW1 = [...Array(40).keys()].map((i) => `r${i}`).filter((n) => workerOf(s, n) === 'w1');
    s.begin(10, 0);
    workerDown(s, 'w1');
    const first = flush(s).length;
    assert.ok(first <= 10, String(first));
    assert.equal(s.cut, true);
    const waiting = onW1.find((n) => workerOf(s, n) === 'w1')!;
    const id = s.view(waiting)!.id;
    assert.equal(report(s, 'w1', 'L1', { type: 'completed', name: waiting, id, attempt: s.view(waiting)!.attempt }, T).ok, false);
    drain(s, 10);
    for (const n of onW1) assert.equal(workerOf(s, n), 'w2', n);
  });

  test('a worker back as a new incarnation gets its new attempts over several batches, holds kept', () => {
    const s = filled(30);
    // h is on its way to w1 from w0, which has not said it stopped: a hold.
    workerUp(s, 'w0', 1000, 'L0', NOOP);
    add(s, 'h', {}, T);
    placePending(s);
    flush(s);
    if (workerOf(s, 'h') !== 'w0') throw new Error('h should be placed on the empty w0');
    move(s, 'h', s.workers.get('w1')!, 'rebalance');
    flush(s);
    assert.equal(assignedTask(s.entry('h'), 0)?.task.hold, true);
    const before = s.view('r0')!.attempt;
    s.begin(8, 0);
    workerUp(s, 'w1', 1000, 'L1b', NOOP);
    assert.ok(flush(s).length <= 8);
    const sizes = drain(s, 8);
    assert.ok(sizes.every((n) => n <= 8), String(sizes));
    for (let i = 0; i < 30; i++) assert.equal(s.view(`r${i}`)!.attempt, before + 1, `r${i}`);
    assert.equal(assignedTask(s.entry('r0'), 0)?.epoch, 'L1b');
    assert.deepEqual([assignedTask(s.entry('h'), 0)?.epoch, assignedTask(s.entry('h'), 0)?.task.hold], ['L1b', true], 'still held for w0');
  });

  test('a batch tries at most four times its budget of pending resources; those that fit nowhere go to the back, and the pass ends', () => {
    const s = fresh();
    for (let i = 0; i < 100; i++) add(s, `p${i}`, {}, T);
    flush(s);
    assert.equal(s.pending.size, 100, 'no worker yet');
    s.begin(5, 0);
    workerUp(s, 'w1', 3, 'L1', NOOP);
    flush(s);
    assert.equal(s.cut, true);
    const sizes = drain(s, 5);
    assert.equal(sizes.length, 4, `100 tries at 20 a batch: ${sizes}`);
    assert.deepEqual([...Array(100).keys()].filter((i) => workerOf(s, `p${i}`) === 'w1'), [0, 1, 2]);
    assert.deepEqual([...s.pending].slice(0, 2), ['p3', 'p4'], 'tried in order, each to the back');
    // Room again: a new pass, which finds the next in line.
    remove(s, 'p0');
    drain(s, 5);
    assert.equal(workerOf(s, 'p3'), 'w1');
  });
});

describe('repair', () => {
  test('a batch budget spreads the repair of a large load over batches, and every stale key is rewritten in the end', () => {
    const s = fresh();
    loadWorker(s, 'w1', 1000, 'L1-new', NOOP);
    loadWorker(s, 'w2', 1000, 'L2', NOOP);
    for (let i = 0; i < 50; i++) loadResource(s, rec(`s${i}`, 'w1'), 5, { worker: 'w1', epoch: 'L1-old', attempt: 1 });
    for (let i = 0; i < 30; i++) loadResource(s, rec(`d${i}`, 'dead'), 5, { worker: 'dead', epoch: 'Ld', attempt: 1 });
    repair(s, []);
    const sizes: number[] = [];
    const written = new Map<string, StoredAssignment>();
    for (let batch = 0; batch < 20; batch++) {
      s.begin(16, 0);
      restamps(s);
      placePending(s);
      const units = flush(s);
      sizes.push(units.length);
      for (const u of units) for (const op of u.ops) if ('put' in op && op.put.startsWith('gaffer/assign/')) written.set(op.put, packed.decode(op.value) as StoredAssignment);
      if (!s.cut) break;
    }
    assert.ok(sizes.every((n) => n <= 16), String(sizes));
    assert.equal(sizes.reduce((a, b) => a + b, 0), 80);
    for (let i = 0; i < 50; i++) assert.equal(written.get(keys.assignment('w1', `s${i}`))?.epoch, 'L1-new');
    for (let i = 0; i < 30; i++) assert.ok(['w1', 'w2'].includes(workerOf(s, `d${i}`)!), `d${i} placed`);
    assert.equal(s.cut, false);
  });

  test('rewrites stale and missing assignment keys and deletes orphans; leaves good ones alone', () => {
    const s = fresh();
    loadWorker(s, 'w1', 10, 'L1-new', NOOP);
    loadResource(s, rec('stale', 'w1'), 5, { worker: 'w1', epoch: 'L1-old', attempt: 1 });
    loadResource(s, rec('missing', 'w1'), 6, undefined);
    loadResource(s, rec('good', 'w1'), 7, { worker: 'w1', epoch: 'L1-new', attempt: 1 });
    repair(s, [
      { worker: 'w9', name: 'zombie' },
      { worker: 'w2', name: 'good' },
    ]);
    assert.equal(s.log.orphans.length, 2, 'the orphans wait in the change log');
    restamps(s); // the leader's plan() does this, within the batch's budget
    const units = flush(s);
    assert.deepEqual(
      units.map((u) => [u.name, u.ops.map(show)]),
      [
        ['stale', ['put gaffer/resources/stale', 'put gaffer/assign/w1/stale']],
        ['missing', ['put gaffer/resources/missing', 'put gaffer/assign/w1/missing']],
        ['zombie', ['del gaffer/assign/w9/zombie']],
        ['good', ['del gaffer/assign/w2/good']],
      ],
    );
    assert.equal((valueOf(units, keys.assignment('w1', 'stale')) as StoredAssignment).epoch, 'L1-new');
    // Orphans are deleted once, not on every flush.
    assert.deepEqual(flush(s), []);
  });

  test("deletes the assignment key of a resource whose worker is gone", () => {
    const s = fresh();
    loadWorker(s, 'w2', 10, 'L2', NOOP);
    loadResource(s, rec('a', 'dead'), 5, { worker: 'dead', epoch: 'Ld', attempt: 1 });
    repair(s, []);
    assert.deepEqual([...s.pending], ['a']);
    placePending(s);
    const ops = opsByName(flush(s)).a;
    assert.ok(ops?.includes('del gaffer/assign/dead/a'), String(ops));
  });

  test(
    "a loaded resource whose worker is gone reads as pending (worker null) until it is placed",
    () => {
      const s = fresh();
      loadResource(s, rec('a', 'dead'), 5, { worker: 'dead', epoch: 'Ld', attempt: 1 });
      repair(s, []);
      placePending(s); // no live worker: stays pending
      assert.deepEqual([...s.pending], ['a']);
      assert.equal(s.view('a')?.worker, null);
      const stored = valueOf(flush(s), keys.resource('a')) as StoredResource;
      assert.equal(stored.worker, null);
    },
  );

  test(
    'an orphan delete never targets a key the same flush puts',
    () => {
      const s = fresh();
      loadWorker(s, 'w1', 10, 'L1', NOOP);
      loadResource(s, rec('a', null), 5, undefined);
      repair(s, [{ worker: 'w1', name: 'a' }]);
      placePending(s); // the leader's receive() does this in the same batch
      assert.equal(workerOf(s, 'a'), 'w1');
      const units = flush(s);
      const puts = new Set(units.flatMap((u) => u.ops.filter((o) => 'put' in o).map(keyOf)));
      const dels = units.flatMap((u) => u.ops.filter((o) => 'del' in o).map(keyOf));
      assert.deepEqual(dels.filter((k) => puts.has(k)), []);
      assert.ok(puts.has(keys.assignment('w1', 'a')));
    },
  );
});

// --- flush invariants under a long random run -----------------------------------

/** model strips what a record carries for audit only (the writer's term), leaving what the planner decides. */
function model(v: unknown): unknown {
  const { term: _, reason: _r, ...rest } = v as Record<string, unknown>;
  return rest;
}

/** expected is what etcd should hold for this model: every resource key, and one assignment key per placed resource. */
function expected(s: ClusterState): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const r of list(s)) {
    // The pending reason is derived, kept in memory and recomputed by a new leader: not part of what etcd must hold.
    const { revision: _, reason: _r, ...stored } = r;
    // A placed resource's record names the epoch of its assignment, so a new leader can trust it without reading the assignment.
    const epoch = r.worker ? { epoch: s.workers.get(r.worker)!.epoch } : {};
    out.set(keys.resource(r.name), { ...stored, ...epoch });
    const { name, id, worker, spec, createdAt, attempt } = r;
    if (worker) out.set(keys.assignment(worker, name), { name, id, worker, spec, createdAt, attempt, ...epoch });
  }
  return out;
}

describe('flush under random batches', () => {
  for (const seed of [1, 2, 3, 42, 1337]) {
    test(`seed ${seed}: no key twice in a unit, and applying every flush keeps etcd equal to the model`, () => {
      const rand = seededRandom(seed);
      const pickOf = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
      const names = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'x.y', 'x.y.z'];
      const workerIds = ['w1', 'w2', 'w3', 'w4'];
      const s = fresh();
      const etcd = new Map<string, unknown>();
      let lease = 0;
      for (let batch = 0; batch < 300; batch++) {
        const steps = 1 + Math.floor(rand() * 6);
        for (let i = 0; i < steps; i++) {
          const r = rand();
          if (r < 0.35) add(s, pickOf(names), { n: i }, T);
          else if (r < 0.6) remove(s, pickOf(names));
          else if (r < 0.8) {
            const id = pickOf(workerIds);
            const known = s.workers.get(id);
            // Usually a new incarnation, sometimes a capacity change on the same lease.
            const epoch = known && rand() < 0.5 ? known.epoch : `L${++lease}`;
            workerUp(s, id, 1 + Math.floor(rand() * 4), epoch, NOOP);
          } else workerDown(s, pickOf(workerIds));
        }
        placePending(s);
        const units = flush(s);
        for (const txn of chunk(units, 7)) {
          const seen = new Set<string>();
          for (const u of txn) {
            const unitKeys = u.ops.map(keyOf);
            assert.equal(new Set(unitKeys).size, unitKeys.length, `batch ${batch}: ${u.name} repeats a key: ${unitKeys}`);
            // etcd refuses a txn that touches a key twice, so this must hold per transaction too.
            for (const k of unitKeys) {
              assert.ok(!seen.has(k), `batch ${batch}: ${k} twice in one txn`);
              seen.add(k);
            }
            for (const op of u.ops) {
              if ('put' in op) etcd.set(op.put, model(packed.decode(op.value)));
              else {
                assert.ok(etcd.has(op.del), `batch ${batch}: deletes ${op.del}, which is not there`);
                etcd.delete(op.del);
              }
            }
          }
        }
        assert.deepEqual(etcd, expected(s), `batch ${batch}`);
        // The planner's own bookkeeping agrees with the records.
        for (const r of list(s)) {
          assert.equal(s.pending.has(r.name), r.worker === null, `batch ${batch}: ${r.name} pending flag`);
          if (r.worker) assert.ok(s.workers.get(r.worker)!.names.has(r.name));
        }
        for (const w of s.workers.values()) for (const n of w.names) assert.equal(workerOf(s, n), w.id);
        // Pending work is left only when every live worker is full.
        if (s.pending.size > 0) for (const w of s.workers.values()) assert.ok(w.assigned >= w.capacity, `batch ${batch}`);
      }
      assert.ok(lease > 10, 'the run exercised re-registration');
    });
  }

  test('every assignment key the planner writes parses back to its worker and name', () => {
    const s = loaded([['w1', 10, 'L1']], []);
    add(s, 'svc.alpha.v2', {}, T);
    const [unit] = flush(s);
    const put = unit!.ops.find((o) => 'put' in o && o.put.startsWith(keys.assignmentsPrefix))!;
    assert.deepEqual(parseKey.assignment(keyOf(put)), { workerId: 'w1', name: 'svc.alpha.v2' });
  });
});

// --- chunk -------------------------------------------------------------------

const unit = (name: string, n: number): Unit => ({
  name,
  ops: Array.from({ length: n }, (_, i) => ({ del: `${name}/${i}` })),
  assigns: [],
  bytes: 0,
});

describe('chunk', () => {
  test('packs greedily, in order, without splitting a unit', () => {
    const units = [unit('a', 2), unit('b', 3), unit('c', 1), unit('d', 3), unit('e', 1)];
    const txns = chunk(units, 5);
    assert.deepEqual(
      txns.map((t) => t.map((u) => u.name)),
      [['a', 'b'], ['c', 'd', 'e']],
    );
    // Units are passed through whole and unchanged.
    assert.deepEqual(txns.flat(), units);
  });

  test('never exceeds maxOps when every unit fits', () => {
    const rand = seededRandom(7);
    for (let round = 0; round < 200; round++) {
      const maxOps = 3 + Math.floor(rand() * 10);
      const units = Array.from({ length: Math.floor(rand() * 40) }, (_, i) => unit(`u${i}`, 1 + Math.floor(rand() * 3)));
      const txns = chunk(units, maxOps);
      assert.deepEqual(txns.flat(), units, 'order and content are preserved');
      for (const t of txns) {
        assert.ok(t.length > 0, 'no empty transactions');
        const n = t.reduce((sum, u) => sum + u.ops.length, 0);
        assert.ok(n <= maxOps, `${n} ops > ${maxOps}`);
      }
      // Greedy: the next unit would not have fit in the previous transaction.
      for (let i = 1; i < txns.length; i++) {
        const prev = txns[i - 1]!.reduce((sum, u) => sum + u.ops.length, 0);
        assert.ok(prev + txns[i]![0]!.ops.length > maxOps);
      }
    }
  });

  test('exactly maxOps fits in one transaction', () => {
    assert.equal(chunk([unit('a', 2), unit('b', 2)], 4).length, 1);
    assert.equal(chunk([unit('a', 2), unit('b', 3)], 4).length, 2);
  });

  test('a unit larger than maxOps is kept whole, alone in its transaction', () => {
    const txns = chunk([unit('a', 1), unit('big', 5), unit('c', 1)], 3);
    assert.deepEqual(
      txns.map((t) => t.map((u) => u.name)),
      [['a'], ['big'], ['c']],
    );
    assert.equal(txns[1]![0]!.ops.length, 5);
    // Leading with the oversized unit must not emit an empty transaction before it.
    assert.deepEqual(
      chunk([unit('big', 5), unit('c', 1)], 3).map((t) => t.map((u) => u.name)),
      [['big'], ['c']],
    );
  });

  test('no units, no transactions', () => {
    assert.deepEqual(chunk([], 128), []);
  });
});

describe('page', () => {
  test('pages cover every name once, in order, honouring limit and the byte budget', () => {
    const s = fresh();
    loadWorker(s, 'w1', 10_000, 'L1', NOOP);
    const names = Array.from({ length: 250 }, (_, i) => `n${String(i).padStart(3, '0')}`);
    for (const n of [...names].reverse()) add(s, n, {}, T);
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const p = s.page(after, 100, Number.MAX_SAFE_INTEGER);
      pages++;
      assert.ok(p.resources.length <= 100);
      seen.push(...p.resources.map((r) => r.name));
      if (!p.next) break;
      assert.equal(p.next, p.resources[p.resources.length - 1]!.name);
      after = p.next;
    }
    assert.equal(pages, 3);
    assert.deepEqual(seen, names);
    const small = s.page(undefined, 5000, 2000);
    assert.ok(small.resources.length >= 1 && small.resources.length < 250, `byte budget cut the page at ${small.resources.length}`);
    assert.equal(s.page('zzz', 10, 1e9).resources.length, 0);
    assert.equal(s.page('zzz', 10, 1e9).next, undefined);
  });
});
