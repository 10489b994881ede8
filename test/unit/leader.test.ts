// The Leader actor end to end on in-memory ports: load, plan, commit through
// the chain, answer, mirror; commit ordering when etcd reorders pipelined
// transactions; and a fence failure in the middle of a batch.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Leader } from '#actors/leader/leader.js';
import type { HandOverRule } from '#actors/leader/hand-over.js';
import type { PacingOptions } from '#actors/leader/move-pacer.js';
import { keys } from '#protocol/keys.js';
import { json, packed } from '#protocol/codec.js';
import { createMetrics } from '#platform/metrics.js';
import { Prober } from '#platform/nats/prober.js';
import { logger } from '#platform/log.js';
import type { ClientRequest } from '#protocol/request.js';
import type { Op } from '#platform/ports.js';
import { FakeClock, settle } from '../fakes/clock.js';
import { MemStore } from '../fakes/store.js';
import { MemBus } from '../fakes/bus.js';
import { add, del, get, request } from '../fakes/requests.js';

async function setup(opts: { workers?: string[]; seed?: (store: MemStore) => Promise<unknown>; handOver?: HandOverRule; onHandOver?: (reqs: ClientRequest[]) => boolean; onRejected?: (req: ClientRequest) => void; pacing?: PacingOptions } = {}) {
  const clock = new FakeClock();
  const store = new MemStore(clock);
  const bus = new MemBus(clock);
  const lease = await store.grantLease(60);
  const electionKey = keys.candidate(lease);
  await store.txn(undefined, [{ put: electionKey, value: Buffer.from('m1'), lease }]);
  const guard = { key: electionKey, createRevision: store.kv.get(electionKey)!.createRevision };
  for (const w of opts.workers ?? ['w1', 'w2']) {
    const wl = await store.grantLease(60);
    await store.txn(undefined, [{ put: keys.worker(w), value: packed.encode({ id: w, capacity: 100, fenceMs: 1200, kinds: ['noop'] }), lease: wl }]);
  }
  await opts.seed?.(store);
  const fenceLost: ClientRequest[][] = [];
  const metrics = createMetrics({ defaultMetrics: false });
  const leader = new Leader({
    storeReachable: () => true,
    bus,
    store,
    clock,
    id: 'm1',
    guard,
    members: () => (opts.onHandOver ? ['m1', 'm2'] : ['m1']),
    ...(opts.onHandOver ? { onHandOver: opts.onHandOver } : {}),
    ...(opts.handOver ? { handOver: opts.handOver } : {}),
    ...(opts.pacing ? { pacing: opts.pacing } : {}),
    onFenceLost: (reqs) => fenceLost.push(reqs),
    onRejected: opts.onRejected ?? (() => assert.fail('nothing is rejected while the leader runs')),
    log: logger(),
    metrics,
    prober: new Prober(bus, { intervalMs: 100_000, misses: 2, stableMs: 0 }, clock),
  });
  await leader.start();
  await clock.advance(10);
  return { clock, store, bus, leader, guard, fenceLost, metrics };
}

const repliesTo = (bus: MemBus, req: ClientRequest) =>
  bus.published.filter((m) => m.subject === req.reply).map((m) => json.decode(m.data) as Record<string, any>);

/** submitted hands the leader one request and lets it commit and answer. */
async function submitted(leader: Leader, clock: FakeClock, r: ClientRequest): Promise<void> {
  leader.submit(r);
  await clock.advance(10);
}

/** reloaded makes the leader read its model from etcd again (a canceled watch does), and lets it. */
async function reloaded(store: MemStore, clock: FakeClock): Promise<void> {
  store.resetWatches();
  await clock.advance(10);
}

/** rounds runs the clock and pending callbacks a few times: a failed commit, its reload and the re-plan take several. */
async function rounds(clock: FakeClock, n = 5): Promise<void> {
  for (let i = 0; i < n; i++) {
    await clock.advance(10);
    await settle();
  }
}

const keysOf = (ops: Op[]) => ops.map((op) => ('put' in op ? op.put : op.del));

describe('Leader on in-memory ports', () => {
  test('an add is committed, then answered with its commit revision, and mirrored to its worker', async () => {
    const { clock, store, bus, leader } = await setup();
    const req = add('books');
    leader.submit(req);
    await clock.advance(10);
    const [reply] = repliesTo(bus, req);
    assert.ok(reply, 'answered');
    assert.equal(reply.ok, true);
    assert.equal(reply.created, true);
    const stored = store.kv.get(keys.resource('books'))!;
    assert.equal(reply.resource.revision, stored.modRevision, 'the reply carries the commit revision');
    const w = reply.resource.worker as string;
    const assign = bus.on(`worker.${w}.assign`).map((m) => json.decode(m.data) as Record<string, any>);
    assert.equal(assign.length, 1);
    assert.equal(assign[0]!.type, 'put');
    assert.equal(assign[0]!.resource.name, 'books');
    assert.equal(assign[0]!.epoch, store.kv.get(keys.worker(w))!.lease, 'the assignment names the worker incarnation');
    assert.equal(bus.on('events.resource.placed').length, 1);
  });

  test('a batch the planner throws on is answered INTERNAL and the state is read again, not left waiting', async () => {
    // A record no add would accept (validation refuses a null constraint), as if written by hand or an old version.
    const poison = { name: 'poison', id: '00000000-0000-4000-8000-000000000000', worker: null, spec: { constraints: [null] }, createdAt: '', state: 'pending', attempt: 0, failures: 0, term: 1 };
    const { clock, store, bus, leader } = await setup({ seed: (s) => s.txn(undefined, [{ put: keys.resource('poison'), value: packed.encode(poison) }]) });
    const req = add('books');
    leader.submit(req);
    await clock.advance(10);
    const [reply] = repliesTo(bus, req);
    assert.ok(reply, 'answered');
    assert.equal(reply.ok, false);
    assert.equal(reply.error.code, 'INTERNAL');
    // Once the poison is gone, the reload lets the leader serve again.
    await store.txn(undefined, [{ del: keys.resource('poison') }]);
    const again = add('books');
    leader.submit(again);
    await clock.advance(10);
    await settle();
    await clock.advance(10);
    assert.equal(repliesTo(bus, again)[0]?.ok, true);
    await leader.stop();
  });

  test('pipelined batches apply in order even when etcd takes them out of order, and replies follow commits', async () => {
    const { clock, store, bus, leader } = await setup();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let first = true;
    store.txnHook = async (ops) => {
      if (first && keysOf(ops).includes(keys.resource('a'))) {
        first = false;
        await held; // the first batch's transaction is slow...
      }
    };
    const a = add('a');
    leader.submit(a);
    await clock.advance(1);
    const b = add('b');
    leader.submit(b); // ...so the second batch's reaches etcd first
    await clock.advance(1);
    assert.equal(repliesTo(bus, a).length + repliesTo(bus, b).length, 0, 'nothing answered before its commit');
    assert.equal(store.kv.has(keys.resource('b')), false, 'the second transaction did not overtake the first');
    release();
    await clock.advance(10);
    const order = store.applied.flatMap((t) => keysOf(t.ops).filter((k) => k.startsWith(keys.resourcesPrefix)));
    assert.deepEqual(order, [keys.resource('a'), keys.resource('b')]);
    assert.equal(repliesTo(bus, a)[0]?.ok, true);
    assert.equal(repliesTo(bus, b)[0]?.ok, true);
  });

  test('a copy of an add that arrives while the first is still being committed gets the first outcome (created: true)', async () => {
    // The chaos run's "created: false for an id nobody saw created": a forwarding master's resend, or a client retry,
    // reached the leader in a later batch while the first copy's commit was still in the pipeline.
    const { clock, store, bus, leader } = await setup();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let first = true;
    store.txnHook = async (ops) => {
      if (first && keysOf(ops).includes(keys.resource('a'))) {
        first = false;
        await held;
      }
    };
    const original = add('a', { id: 'same' });
    leader.submit(original);
    await clock.advance(1);
    const copy = { ...add('a', { id: 'same' }), reply: '_INBOX.t.copy' };
    leader.submit(copy);
    await clock.advance(1);
    release();
    await clock.advance(10);
    const [a] = repliesTo(bus, original);
    const [b] = repliesTo(bus, copy);
    assert.equal(a?.created, true);
    assert.equal(b?.created, true, 'the copy gets the first outcome, not "exists"');
    assert.equal(b?.resource.id, a?.resource.id);
    assert.equal(b?.resource.revision, a?.resource.revision, 'with the revision of the commit that created it');
  });

  test('a read is answered only after a fenced, read-only transaction', async () => {
    const { clock, store, bus, leader } = await setup();
    const seen: Array<{ ops: number }> = [];
    store.txnHook = (ops) => void seen.push({ ops: ops.length });
    const req = get('nothing');
    leader.submit(req);
    await clock.advance(10);
    assert.deepEqual(seen, [{ ops: 0 }]);
    assert.equal(repliesTo(bus, req)[0]?.error.code, 'NOT_FOUND');
  });

  test('a fence failure mid-batch: nothing more is written, nothing is answered, every request goes back', async () => {
    const { clock, store, bus, leader, guard, fenceLost } = await setup({ workers: ['w1'] });
    // 100 adds make two transactions; the leader loses its key between them.
    const reqs = Array.from({ length: 100 }, (_, i) => add(`r${i}`));
    let n = 0;
    store.txnHook = async () => {
      if (++n === 2) await store.txn(undefined, [{ del: guard.key }]).catch(() => undefined);
    };
    for (const r of reqs) leader.submit(r);
    await clock.advance(10);
    assert.equal(fenceLost.length, 1, 'the master is told once');
    assert.equal(fenceLost[0]!.length, reqs.length, 'with every request of the batch');
    for (const r of reqs) assert.equal(repliesTo(bus, r).length, 0, `${r.command.op} ${'name' in r.command ? r.command.name : ''} not answered`);
    const written = [...store.kv.keys()].filter((k) => k.startsWith('gaffer/resources/')).length;
    assert.ok(written < reqs.length, `only the first transaction applied (${written} of ${reqs.length})`);
  });

  test('a batch refused for a broken chain (an earlier transaction applied late) is planned again after a reload and answered once', async () => {
    const { clock, store, bus, leader } = await setup({ workers: ['w1'] });
    const first = add('a');
    leader.submit(first);
    await clock.advance(10);
    assert.equal(repliesTo(bus, first)[0]?.ok, true);
    // Something the leader gave up on lands now: the chain moves on behind its back.
    await store.txn(undefined, [{ put: keys.commitChain, value: Buffer.from('late') }]);
    const req = add('b');
    leader.submit(req);
    await rounds(clock);
    const r = repliesTo(bus, req);
    assert.equal(r.length, 1, 'answered once');
    assert.equal(r[0]!.ok, true, JSON.stringify(r[0]));
    assert.equal(r[0]!.created, true);
    assert.ok(store.kv.has(keys.resource('b')));
    await leader.stop();
  });

  test('a commit etcd fails otherwise is answered UNAVAILABLE at once (quorum loss is told fast)', async () => {
    const { clock, store, bus, leader } = await setup({ workers: ['w1'] });
    let writes = 0;
    store.txnHook = async (ops) => {
      if (ops.length > 0 && ++writes === 1) throw new Error('etcd unavailable');
    };
    const req = add('a');
    leader.submit(req);
    await rounds(clock);
    const r = repliesTo(bus, req);
    assert.equal(r.length, 1);
    assert.equal(r[0]!.error?.code, 'UNAVAILABLE');
    assert.equal(writes, 1, 'not tried again');
    await leader.stop();
  });

  test('a failed commit hands over only past the rule: a term younger than afterMs and a small state reload', async () => {
    const handedOver: ClientRequest[][] = [];
    const rejected: ClientRequest[] = [];
    const { clock, store, bus, leader } = await setup({
      workers: ['w1'],
      handOver: { resources: 4, afterMs: 1000 },
      onHandOver: (reqs) => (handedOver.push(reqs), true),
      onRejected: (req) => rejected.push(req),
    });
    const failing = new Set(['young', 'small', 'big']);
    store.txnHook = async (ops) => {
      if (ops.some((op) => 'put' in op && failing.has(op.put.slice(keys.resource('').length)))) throw new Error('etcd: request timed out');
    };
    const failed = async (name: string) => {
      const req = add(name);
      leader.submit(req);
      await rounds(clock);
      return req;
    };
    await submitted(leader, clock, add('a'));
    await submitted(leader, clock, add('b'));
    await submitted(leader, clock, add('c'));
    const young = await failed('young');
    assert.equal(repliesTo(bus, young)[0]?.error?.code, 'UNAVAILABLE', 'four resources, but a young term: reloaded and answered');
    await clock.advance(1000);
    store.kv.delete(keys.resource('b'));
    store.resetWatches();
    await rounds(clock);
    const small = await failed('small');
    assert.equal(repliesTo(bus, small)[0]?.error?.code, 'UNAVAILABLE', 'an old term, but three resources with the failed one: small');
    assert.equal(handedOver.length, 0);
    await submitted(leader, clock, add('d'));
    const big = await failed('big');
    assert.deepEqual(handedOver.map((reqs) => reqs.map((r) => r.id)), [[big.id]], 'four: handed over');
    assert.equal(repliesTo(bus, big).length, 0, 'the next leader answers it');
    const later = add('e');
    leader.submit(later);
    await rounds(clock);
    assert.equal(repliesTo(bus, later).length, 0, 'after the handover nothing more is answered here');
    assert.deepEqual(rejected.map((r) => r.id), [later.id], 'but handed back to be forwarded');
    await leader.stop();
  });

  test('a request whose client stopped waiting while it queued is answered TIMEOUT and not planned; a current one is', async () => {
    const { clock, store, bus, leader } = await setup({ workers: ['w1'] });
    await clock.advance(10_000);
    const late = { ...add('late', { receivedAt: clock.now() - 6000 }), timeoutMs: 5000 };
    const current = { ...add('current', { receivedAt: clock.now() - 1000 }), timeoutMs: 5000 };
    const patient = add('patient', { receivedAt: 0 });
    for (const r of [late, current, patient]) leader.submit(r);
    await rounds(clock);
    assert.equal(repliesTo(bus, late)[0]?.error?.code, 'TIMEOUT');
    assert.equal(store.kv.has(keys.resource('late')), false, 'not planned');
    assert.equal(repliesTo(bus, current)[0]?.ok, true);
    assert.equal(repliesTo(bus, patient)[0]?.ok, true, 'no timeout: it waits as long as it takes');
    await leader.stop();
  });

  test('a newer report request from a worker incarnation takes the place of its earlier one still queued; the earlier is answered superseded', async () => {
    const { clock, store, bus, leader } = await setup({ workers: ['w1'] });
    leader.submit(add('a'));
    await clock.advance(10);
    const epoch = store.kv.get(keys.worker('w1'))!.lease;
    const { id } = packed.decode(store.kv.get(keys.resource('a'))!.value) as { id: string };
    const started = { type: 'started', name: 'a', id, attempt: 1 };
    const report = (reports: unknown[], worker = 'w1', e = epoch) => request({ op: 'report', worker, epoch: e, reports: reports as never });
    const first = report([started]);
    const second = report([started, { type: 'progress', name: 'a', id, attempt: 1, progress: { n: 1 } }]);
    const otherEpoch = report([started], 'w1', 'an-older-incarnation');
    // Queued together: the mailbox has not run between them.
    for (const r of [first, otherEpoch, second]) assert.equal(leader.submit(r), true);
    await rounds(clock);
    assert.equal(repliesTo(bus, first)[0]?.error?.code, 'TIMEOUT', 'superseded');
    assert.equal(repliesTo(bus, first).length, 1, 'answered once');
    assert.deepEqual(repliesTo(bus, second)[0]?.results?.map((r: { ok: boolean }) => r.ok), [true, true], 'the newer one is planned');
    assert.equal(repliesTo(bus, otherEpoch).length, 1, 'another incarnation is not superseded by it');
    assert.notEqual(repliesTo(bus, otherEpoch)[0]?.error?.code, 'TIMEOUT');
    // Once taken from the mailbox, the next report request queues anew.
    const third = report([{ type: 'progress', name: 'a', id, attempt: 1, progress: { n: 2 } }]);
    leader.submit(third);
    await rounds(clock);
    assert.equal(repliesTo(bus, third)[0]?.ok, true);
    await leader.stop();
  });

  test('a worker that goes away: its resources move to the other in one commit and the moves are announced', async () => {
    const { clock, store, bus, leader } = await setup();
    for (let i = 0; i < 6; i++) leader.submit(add(`r${i}`));
    await clock.advance(10);
    const w1 = store.kv.get(keys.worker('w1'))!;
    store.expire(w1.lease);
    await clock.advance(10);
    const onW1 = [...store.kv.keys()].filter((k) => k.startsWith(keys.assignments('w1')));
    assert.deepEqual(onW1, [], 'nothing assigned to the lost worker');
    assert.equal([...store.kv.keys()].filter((k) => k.startsWith(keys.assignments('w2'))).length, 6);
    assert.equal(bus.on('events.worker.lost').length, 1);
    assert.equal(bus.on('events.resource.moved').length, 3);
  });

  test("paced, a lost worker's resources move as fast as the pacing allows, without the mailbox spinning meanwhile", async () => {
    // Two moves a second, whatever etcd does.
    const pacing: PacingOptions = { slowMs: Number.MAX_SAFE_INTEGER, maxRate: 2, minRate: 2, increasePerSecond: 0, cutEveryMs: 1000 };
    const { clock, store, bus, leader, metrics } = await setup({ pacing });
    // w2 answers probes, so it stays live however long the moves take.
    bus.subscribe('worker.w2.status', (m) => bus.publish(m.reply!, json.encode({ ok: true, id: 'w2', running: [], tasks: [] })));
    for (let i = 0; i < 12; i++) leader.submit(add(`r${i}`));
    await clock.advance(10);
    const on = (w: string) => [...store.kv.keys()].filter((k) => k.startsWith(keys.assignments(w))).length;
    assert.equal(on('w1') + on('w2'), 12, 'client requests are not paced');
    const lost = on('w1');
    store.expire(store.kv.get(keys.worker('w1'))!.lease);
    // Every batch sets the dedupe gauge once.
    let batches = 0;
    const gauge = metrics.setDedupeEntries.bind(metrics);
    metrics.setDedupeEntries = (n) => (batches++, gauge(n));
    await clock.advance(10);
    const moved0 = on('w2') - (12 - lost);
    assert.ok(moved0 <= 2, `at most a second's allowance at once: ${moved0}`);
    const batches0 = batches;
    await rounds(clock, 20);
    // 200 ms: a batch each time the pacing's wake comes round (100 ms), not one after the other.
    assert.ok(batches - batches0 <= 3, `no batch after batch while nothing is allowed: ${batches - batches0} batches`);
    assert.equal(on('w2') - (12 - lost), moved0, 'and no move');
    await clock.advance(Math.ceil(lost / 2) * 1000 + 500);
    assert.equal(on('w2'), 12, 'all moved in the end');
    assert.equal(on('w1'), 0);
    await leader.stop();
  });

  test('after loading, the leader asks workers what they run: "running" is known again', async () => {
    const { clock, store, bus, leader } = await setup();
    for (const n of ['a', 'b', 'c']) leader.submit(add(n));
    await clock.advance(10);
    // w1 says it runs its resources (attempt 1); w2 does not answer at all.
    bus.subscribe('worker.w1.status', (m) => {
      const tasks = [...store.kv.values()]
        .filter((kv) => kv.key.startsWith(keys.assignments('w1')))
        .map((kv) => packed.decode(kv.value) as { name: string; id: string; attempt: number })
        .map(({ name, id, attempt }) => ({ name, id, attempt, since: '' }));
      bus.publish(m.reply!, json.encode({ ok: true, id: 'w1', running: tasks.map((t) => t.name), tasks }));
    });
    await reloaded(store, clock);
    const status = (name: string) => {
      const req = get(name);
      leader.submit(req);
      return req;
    };
    const reqs = ['a', 'b', 'c'].map(status);
    await clock.advance(10);
    const states = reqs.map((r) => repliesTo(bus, r)[0]!.resource as { worker: string; state: string });
    for (const st of states) assert.equal(st.state, st.worker === 'w1' ? 'running' : 'starting');
    assert.ok(states.some((st) => st.worker === 'w1'));
    await leader.stop();
  });

  test('a late copy of an add answered "exists", or of a delete answered NOT_FOUND, gets that answer again and changes nothing, also after a reload', async () => {
    // Chaos seed 2718281: an add answered "exists" was held by a paused master and handed to the leader
    // after the name had been deleted; planned afresh, it created the resource again.
    const { clock, store, bus, leader } = await setup();
    const send = (r: ClientRequest) => submitted(leader, clock, r);
    await send(add('x'));
    const exists = add('x');
    await send(exists);
    assert.equal(repliesTo(bus, exists)[0]?.created, false);
    const missing = del('y');
    await send(missing);
    assert.equal(repliesTo(bus, missing)[0]?.error?.code, 'NOT_FOUND');
    await send(del('x'));
    await send(add('y'));
    // The late copies, from this leader's memory...
    await send(exists);
    await send(missing);
    assert.equal(store.kv.has(keys.resource('x')), false, 'x is not created again');
    assert.ok(store.kv.has(keys.resource('y')), 'y is not deleted');
    // ...and from etcd's records, as a new leader would read them.
    await reloaded(store, clock);
    await send(exists);
    await send(missing);
    const e = repliesTo(bus, exists);
    const m = repliesTo(bus, missing);
    assert.equal(e.length, 3);
    for (const r of e) assert.deepEqual([r.ok, r.created], [true, false], JSON.stringify(r));
    assert.deepEqual(m.map((r) => r.error?.code), ['NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND']);
    assert.equal(store.kv.has(keys.resource('x')), false, 'x is not created again');
    assert.ok(store.kv.has(keys.resource('y')), 'y is not deleted');
    await leader.stop();
  });

  test('a reload within a term does not overwrite the outcomes recorded before it', async () => {
    // Each load starts its sequence of dedupe keys again: if the keys did not name the load, the next
    // batch's record would replace the delete's, and the delete's retry would find nothing (NOT_FOUND).
    const { clock, store, bus, leader } = await setup();
    const send = (r: ClientRequest) => submitted(leader, clock, r);
    await send(add('x'));
    const first = del('x');
    await send(first);
    await reloaded(store, clock);
    await send(add('y'));
    await send(add('x'));
    await reloaded(store, clock);
    await send(first);
    const r = repliesTo(bus, first);
    assert.equal(r.length, 2);
    assert.equal(r[1]!.ok, true, `the retry gets the first outcome, not ${JSON.stringify(r[1])}`);
    assert.ok(store.kv.has(keys.resource('x')), 'the x added since is not deleted');
    await leader.stop();
  });

  test('after a watch reset the leader reloads and keeps serving', async () => {
    const { clock, store, bus, leader } = await setup();
    leader.submit(add('a'));
    await clock.advance(10);
    await reloaded(store, clock);
    const req = add('b');
    leader.submit(req);
    await clock.advance(10);
    assert.equal(repliesTo(bus, req)[0]?.created, true);
    await leader.stop();
    await settle();
  });
});
