// The warm standby on in-memory ports: what it hands over equals what a
// fresh read of etcd finds, whatever was written before and after it
// started; it hands over only once it has seen the new leader's barrier; and
// it says no (so the leader reads etcd) when it cannot be sure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Standby } from '#actors/leader/standby.js';
import { buildCluster, readCluster, type ClusterRead } from '#actors/leader/loader.js';
import { placePending } from '#actors/leader/core/placement.js';
import { ClusterState } from '#actors/leader/core/state.js';
import { loadCordon, loadFencing, loadResource, loadWorker, repair } from '#actors/leader/core/repair.js';
import { FENCE_SLACK_MS } from '#actors/leader/liveness.js';
import { decodeCordon, decodeFencing, decodeRecord, decodeWorkerInfo } from '#protocol/stored.js';
import { flush } from '../fakes/core.js';
import { keys, parseKey } from '#protocol/keys.js';
import { packed } from '#protocol/codec.js';
import { logger } from '#platform/log.js';
import type { Guard, Op } from '#platform/ports.js';
import { FakeClock, settle } from '../fakes/clock.js';
import { MemStore } from '../fakes/store.js';

const names = ['a', 'b', 'c', 'd', 'e'];
const workers = ['w1', 'w2'];

const record = (name: string, worker: string | null, n: number) =>
  packed.encode({ name, id: `${name}-${n}`, worker, spec: {}, createdAt: '2026-12-02T00:00:00.000Z', state: worker ? 'starting' : 'pending', attempt: 1, failures: 0, epoch: worker ? `L-${worker}` : undefined });

/** An op on one of gaffer's keys, or on one a read ignores. */
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ name: fc.constantFrom(...names), worker: fc.constantFrom(null, ...workers), n: fc.nat(99) }).map(({ name, worker, n }) => ({ put: keys.resource(name), value: record(name, worker, n) })),
  fc.constantFrom(...names).map((name) => ({ del: keys.resource(name) })),
  // A record in a handoff from the other worker; one that does not decode; one that names another resource.
  fc.record({ name: fc.constantFrom(...names), w: fc.constantFrom(...workers), n: fc.nat(99) }).map(({ name, w, n }) => ({
    put: keys.resource(name),
    value: packed.encode({ ...(packed.decode(record(name, w, n)) as object), handoff: { worker: workers.find((x) => x !== w), epoch: 'L-old', attempt: 1, reason: 'rebalance' } }),
  })),
  fc.constantFrom(...names).map((name) => ({ put: keys.resource(name), value: packed.encode({ nonsense: true }) })),
  fc.constantFrom(...names).map((name) => ({ put: keys.resource(name), value: record('elsewhere', null, 1) })),
  fc.record({ w: fc.constantFrom(...workers), name: fc.constantFrom(...names) }).map(({ w, name }) => ({ put: keys.assignment(w, name), value: packed.encode({ name }) })),
  fc.record({ w: fc.constantFrom(...workers), name: fc.constantFrom(...names) }).map(({ w, name }) => ({ del: keys.assignment(w, name) })),
  fc.constantFrom(...workers).map((w) => ({ put: keys.worker(w), value: packed.encode({ id: w, capacity: 10, fenceMs: 1200, kinds: ['noop'] }) })),
  fc.constantFrom(...workers).map((w) => ({ del: keys.worker(w) })),
  fc.constantFrom(...workers).map((w) => ({ put: keys.cordon(w), value: packed.encode({ draining: false }) })),
  fc.constantFrom(...workers).map((w) => ({ put: keys.fencing(w), value: packed.encode({ epoch: `L-${w}`, fenceMs: 800 }) })),
  fc.constantFrom(...workers).map((w) => ({ del: keys.fencing(w) })),
  fc.nat(5).map((seq) => ({ put: keys.dedupe(1, 1, seq), value: packed.encode([[`r${seq}`, ['n', 'x']]]) })),
  fc.nat(5).map((seq) => ({ del: keys.dedupe(1, 1, seq) })),
  fc.nat(1000).map((n) => ({ put: keys.commitChain, value: packed.encode(n) })),
  fc.constantFrom(...names).map((name) => ({ put: keys.checkpoint(name), value: packed.encode({ big: 'x'.repeat(100) }) })),
);

const groups = (g: Map<string, Set<string>>) => [...g].map(([k, names]) => [k, [...names].sort()]).sort();

/** What a read says, in a form to compare: sorted, decoded records as plain data. */
function normal(r: ClusterRead) {
  const kvs = (xs: Iterable<{ key: string; value: Uint8Array }>) => [...xs].map((kv) => [kv.key, Buffer.from(kv.value).toString('hex')]).sort();
  return {
    workers: kvs(r.workers),
    resources: [...r.resources.entries].sort(([a], [b]) => (a < b ? -1 : 1)),
    byWorker: groups(r.resources.byWorker),
    assigned: groups(r.resources.assigned),
    malformed: [...r.resources.malformed].map(([key, err]) => [key, err.message]).sort(),
    chain: r.chain && Buffer.from(r.chain).toString('hex'),
    cordons: kvs(r.cordons),
    fencing: kvs(r.fencing),
    dedupe: kvs(r.dedupe),
  };
}

async function elect(store: MemStore): Promise<Guard> {
  const lease = await store.grantLease(60);
  const key = keys.candidate(lease);
  const rev = await store.txn(undefined, [{ put: key, value: Buffer.from('m2'), lease }]);
  return { key, createRevision: rev };
}

/** Transactions written before a standby starts, and while it watches. */
const historyArb = fc.array(fc.array(opArb, { minLength: 1, maxLength: 4 }), { maxLength: 12 });

/** handedOver writes `before`, starts a standby, writes `after` (some while its watch catches up), and has it hand over to a new leader. */
async function handedOver(before: Op[][], after: Op[][]) {
  const clock = new FakeClock();
  const store = new MemStore(clock);
  for (const ops of before) await store.txn(undefined, ops);
  const standby = new Standby(store, logger(), clock).start();
  await settle();
  for (const [i, ops] of after.entries()) {
    await store.txn(undefined, ops);
    if (i % 3 === 0) await settle();
  }
  const handed = await standby.take(await elect(store));
  assert.ok(handed, 'the standby hands over');
  return { clock, store, handed };
}

test('a standby hands over what a read of etcd finds, whatever was written before and after it started', async () => {
  await fc.assert(
    fc.asyncProperty(historyArb, historyArb, async (before, after) => {
      const { store, handed } = await handedOver(before, after);
      assert.equal(handed.source, 'standby');
      const fresh = await readCluster(store);
      assert.equal(handed.revision, fresh.revision);
      assert.deepEqual(normal(handed), normal(fresh));
    }),
    { numRuns: 150 },
  );
});

test('a standby hands over only past the barrier: writes not yet delivered are waited for', async () => {
  const clock = new FakeClock();
  const store = new MemStore(clock);
  // Every watch response takes 50 ms to arrive.
  const watch = store.watch.bind(store);
  store.watch = (prefix, from, onEvents, onReset) => watch(prefix, from, (events, rev) => void clock.after(50, () => onEvents(events, rev)), onReset);
  const standby = new Standby(store, logger(), clock).start();
  await settle();
  // The last write before the election is still on its way to the standby's watch.
  await store.txn(undefined, [{ put: keys.resource('late'), value: record('late', null, 1) }]);
  const guard = await elect(store);
  const taking = standby.take(guard);
  await clock.advance(100);
  const handed = await taking;
  assert.ok(handed);
  assert.ok(handed.resources.entries.has('late'), 'the late write is in the handover');
  assert.ok(store.kv.has(keys.takeover), 'the barrier was written');
});

test('a standby says no when the barrier is refused (not the leader), when its first read hangs, or once stopped', async () => {
  const clock = new FakeClock();
  const store = new MemStore(clock);
  const standby = new Standby(store, logger(), clock).start();
  await settle();
  const refused = await standby.take({ key: keys.candidate('nope'), createRevision: 1 });
  assert.equal(refused, undefined);

  const hung = new MemStore(clock);
  hung.range = () => new Promise(() => {});
  const waiting = new Standby(hung, logger(), clock).start();
  const taken = waiting.take(await elect(hung));
  await clock.advance(30_001);
  assert.equal(await taken, undefined);

  const stopped = new Standby(store, logger(), clock).start();
  await settle();
  stopped.stop();
  assert.equal(await stopped.take(await elect(store)), undefined);
});

test('after its watch is reset (compaction) a standby reads again and still hands over a current read', async () => {
  const clock = new FakeClock();
  const store = new MemStore(clock);
  await store.txn(undefined, [{ put: keys.resource('a'), value: record('a', null, 1) }]);
  const standby = new Standby(store, logger(), clock).start();
  await settle();
  store.resetWatches();
  await settle(); // MemStore reads only at its current revision: let the re-read finish first
  await store.txn(undefined, [{ put: keys.resource('b'), value: record('b', null, 1) }, { del: keys.resource('a') }]);
  await settle();
  const handed = await standby.take(await elect(store));
  assert.ok(handed);
  assert.deepEqual(normal(handed), normal(await readCluster(store)));
});

test('a state built from the handover equals one built from etcd', async () => {
  const clock = new FakeClock();
  const store = new MemStore(clock);
  const wl = await store.grantLease(60);
  for (const w of workers) {
    await store.txn(undefined, [{ put: keys.worker(w), value: packed.encode({ id: w, capacity: 10, fenceMs: 1200, kinds: ['noop'] }), lease: wl }]);
  }
  const standby = new Standby(store, logger(), clock).start();
  await settle();
  for (const [i, name] of names.entries()) {
    const w = i % 3 === 2 ? null : workers[i % 2]!;
    const ops: Op[] = [{ put: keys.resource(name), value: record(name, w, i) }];
    if (w && i !== 1) ops.push({ put: keys.assignment(w, name), value: packed.encode({ name }) });
    await store.txn(undefined, ops);
  }
  const guard = await elect(store);
  const handed = await standby.take(guard);
  assert.ok(handed);
  const fromStandby = await buildCluster(handed, logger(), clock);
  const fromEtcd = await buildCluster(await readCluster(store), logger(), clock);
  const list = (s: ClusterState) => s.page(undefined, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER).resources;
  assert.deepEqual(list(fromStandby.state), list(fromEtcd.state));
  assert.deepEqual([...fromStandby.state.pending].sort(), [...fromEtcd.state.pending].sort());
  assert.deepEqual(flush(fromStandby.state), flush(fromEtcd.state));
});

/** What a load made of the state, to compare: entries, pending, workers' name sets, handoffs, and the repairs it asks for. */
function loaded(s: ClusterState) {
  const sorted = <T>(xs: Iterable<T>) => [...xs].sort();
  return {
    entries: [...s.resources].sort(([a], [b]) => (a < b ? -1 : 1)).map(([n, e]) => [n, e.rec, e.revision, e.assign, e.handoff]),
    pending: sorted(s.pending),
    names: [...s.workers].map(([id, w]) => [id, sorted(w.names)]).sort(),
    leaving: [...s.leaving].map(([id, set]) => [id, sorted(set)]).sort(),
    restamp: sorted(s.restamp),
    // By name: a standby's maps are in the order its watch delivered them, a read's in key order.
    flush: flush(s).sort((a, b) => (String(a.name) < String(b.name) ? -1 : 1)),
  };
}

/** The per-resource load that adoptResources replaced, as the oracle: buildCluster as it was, loadResource for each record. */
async function loadedOneByOne(store: MemStore, clock: FakeClock): Promise<ClusterState> {
  const read = await readCluster(store);
  const s = new ClusterState();
  for (const kv of read.cordons) loadCordon(s, kv.key.slice(keys.cordonsPrefix.length), decodeCordon(kv.value));
  for (const kv of read.workers) {
    const id = parseKey.worker(kv.key)!;
    const info = decodeWorkerInfo(kv.value);
    loadWorker(s, id, info.capacity, kv.lease, info.kinds, info.labels);
  }
  for (const kv of read.fencing) {
    const id = parseKey.fencing(kv.key)!;
    const note = decodeFencing(kv.value);
    if (!s.workers.has(id)) loadFencing(s, id, clock.now() + note.fenceMs + FENCE_SLACK_MS);
  }
  const present = new Set([...(await store.range(keys.assignmentsPrefix, read.revision, { keysOnly: true })).kvs].map((kv) => kv.key));
  for (const kv of (await store.range(keys.resourcesPrefix, read.revision)).kvs) {
    const name = parseKey.resource(kv.key)!;
    let d: ReturnType<typeof decodeRecord>;
    try {
      d = decodeRecord(kv.value);
    } catch {
      continue;
    }
    if (d.rec.name !== name) continue;
    const { rec, epoch, handoff } = d;
    const key = rec.worker ? keys.assignment(rec.worker, name) : undefined;
    const mine =
      key && present.delete(key) && epoch !== undefined
        ? { worker: rec.worker!, epoch, attempt: rec.attempt, ...(rec.delayMs ? { delayMs: rec.delayMs } : {}), ...(rec.checkpoint ? { checkpoint: true } : {}) }
        : undefined;
    loadResource(s, rec, kv.modRevision, mine, handoff);
  }
  const orphans = [...present].map((k) => parseKey.assignment(k)!).map((k) => ({ worker: k.workerId, name: k.name }));
  repair(s, orphans);
  return s;
}

test('a load takes over the read as one built resource by resource would, and a standby-built state equals an etcd-built one', async () => {
  await fc.assert(
    fc.asyncProperty(historyArb, historyArb, async (before, after) => {
      const { clock, store, handed } = await handedOver(before, after);
      const fromStandby = loaded((await buildCluster(handed, logger(), clock)).state);
      const fromEtcd = loaded((await buildCluster(await readCluster(store), logger(), clock)).state);
      assert.deepEqual(fromStandby, fromEtcd);
      assert.deepEqual(fromEtcd, loaded(await loadedOneByOne(store, clock)));
    }),
    { numRuns: 150 },
  );
});

test('a take() waiting for the barrier gives up at once when the watch is reset, not at its deadline', async () => {
  const clock = new FakeClock();
  const store = new MemStore(clock);
  // Watch responses never arrive, so the barrier is never seen.
  const watch = store.watch.bind(store);
  store.watch = (prefix, from, _onEvents, onReset) => watch(prefix, from, () => undefined, onReset);
  const standby = new Standby(store, logger(), clock).start();
  await settle();
  let result: unknown = 'pending';
  void standby.take(await elect(store)).then((r) => (result = r));
  await settle();
  assert.equal(result, 'pending');
  store.resetWatches();
  await settle();
  assert.equal(result, undefined, 'answered without waiting out the barrier deadline');
});

test("a revoked worker's fencing note makes a load's moves of its work wait out its window; none without a note", async () => {
  const clock = new FakeClock();
  const store = new MemStore(clock);
  const wl = await store.grantLease(60);
  await store.txn(undefined, [{ put: keys.worker('w1'), value: packed.encode({ id: 'w1', capacity: 10, fenceMs: 800, kinds: ['noop'] }), lease: wl }]);
  // w2 was revoked (its key is gone) and may still run its tasks; w3 expired long ago.
  const nl = await store.grantLease(2);
  await store.txn(undefined, [{ put: keys.fencing('w2'), value: packed.encode({ epoch: 'L-w2', fenceMs: 1200 }), lease: nl }]);
  // w1 was about to be revoked when its leader died: still registered, so the new leader's liveness waits if its key goes.
  await store.txn(undefined, [{ put: keys.fencing('w1'), value: packed.encode({ epoch: wl, fenceMs: 800 }), lease: nl }]);
  await store.txn(undefined, [
    { put: keys.resource('a'), value: record('a', 'w2', 1) },
    { put: keys.assignment('w2', 'a'), value: packed.encode({ name: 'a' }) },
    { put: keys.resource('b'), value: record('b', 'w3', 1) },
    { put: keys.assignment('w3', 'b'), value: packed.encode({ name: 'b' }) },
  ]);
  const loaded = await buildCluster(await readCluster(store), logger(), clock);
  const m = loaded.state;
  m.begin(100, clock.now() + 200);
  placePending(m);
  const delays = new Map(
    flush(m).flatMap((u) => u.ops.flatMap((op) => ('put' in op && op.put.startsWith(keys.assignments('w1')) ? [[op.put.slice(keys.assignments('w1').length), (packed.decode(op.value) as { delayMs?: number }).delayMs]] : []))),
  );
  assert.equal(delays.get('a'), 1200 + 50 - 200, "its whole window from the load, and the slack, less what has passed");
  assert.equal(delays.get('b'), undefined);
  assert.deepEqual([...loaded.noted], [['w1', wl]]);
});
