// The Committer's chain on an in-memory etcd that applies pipelined
// transactions in another order than they were sent.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Committer, UNKNOWN_OUTCOME_PAUSE_MS, UNKNOWN_OUTCOME_RETRIES } from '#actors/leader/committer.js';
import { UnavailableError } from '#protocol/errors.js';
import { keys } from '#protocol/keys.js';
import type { Op } from '#platform/ports.js';
import { FakeClock, settle } from '../fakes/clock.js';
import { MemStore } from '../fakes/store.js';

const put = (k: string): Op[] => [{ put: k, value: Buffer.from(k) }];

/** A committer leading on `store`, counting the transactions it sends again after a lost answer. */
async function setup<S extends MemStore = MemStore>(makeStore: (clock: FakeClock) => S = (c) => new MemStore(c) as S, reachable = () => true) {
  const clock = new FakeClock();
  const store = makeStore(clock);
  const lease = await store.grantLease(60);
  const key = keys.candidate(lease);
  const rev = await store.txn(undefined, [{ put: key, value: Buffer.from('m1'), lease }]);
  let unknown = 0;
  const committer = new Committer(store, { key, createRevision: rev }, undefined, clock, reachable, { txn: () => undefined, batch: () => undefined, unknownOutcome: () => unknown++ });
  return { clock, store, committer, unknown: () => unknown };
}

/** A gate a hook can wait on. */
function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

test('a read-only check overtaken by a later write while it waits still commits, fenced', async () => {
  // The fill that reloaded 44 times at 20k resources: etcd applied a check
  // before the write it follows, and the next write before the check's retry,
  // so the check's link could never match again.
  const { store, committer } = await setup();
  const w1Held = gate();
  const w1Applied = gate();
  const w2Applied = gate();
  let checks = 0;
  store.txnHook = async (ops) => {
    const k = ops.map((o) => ('put' in o ? o.put : o.del));
    if (k.includes('gaffer/resources/w1')) await w1Held.wait;
    if (k.includes('gaffer/resources/w2')) await w1Applied.wait; // the second write right after the first
    if (ops.length === 0 && checks++ === 0) queueMicrotask(w1Held.open); // the check reaches etcd first
    else if (ops.length === 0) await w2Applied.wait; // and its retry after the second write
  };
  const w1 = committer.commit([{ ops: put('gaffer/resources/w1') }], 1);
  const check = committer.commit([{ ops: [] }], 1);
  const w2 = committer.commit([{ ops: put('gaffer/resources/w2') }], 1);
  void w1.then(() => w1Applied.open());
  void w2.then(() => w2Applied.open());
  await settle(20);
  assert.equal((await w1).length, 1);
  assert.equal((await w2).length, 1);
  const [checkRev] = await check;
  assert.ok(checkRev! >= (await w1)[0]!, 'the check is answered after the write before it');
  assert.deepEqual(
    store.applied.flatMap((t) => t.ops.map((o) => ('put' in o ? o.put : o.del))).filter((k) => k.includes('/w')),
    ['gaffer/resources/w1', 'gaffer/resources/w2'],
  );
});

test('a check whose fence has failed is refused, even after it was overtaken', async () => {
  const { store, committer } = await setup();
  const w1Held = gate();
  let checks = 0;
  store.txnHook = async (ops) => {
    const k = ops.map((o) => ('put' in o ? o.put : o.del));
    if (k.includes('gaffer/resources/w1')) await w1Held.wait;
    if (ops.length === 0 && checks++ === 0) {
      queueMicrotask(w1Held.open);
    } else if (ops.length === 0) {
      // Deposed while it waited: the election key is gone.
      for (const key of [...store.kv.keys()]) if (key.startsWith(keys.electionPrefix)) store.kv.delete(key);
    }
  };
  const w1 = committer.commit([{ ops: put('gaffer/resources/w1') }], 1);
  const check = committer.commit([{ ops: [] }], 1);
  await settle(20);
  await w1;
  await assert.rejects(check, /fence failed/);
});

test('chain values differ between committers of one term, so a late write of the last one cannot pass', async () => {
  const { store, committer } = await setup();
  await committer.commit([{ ops: put('gaffer/resources/a') }], 1);
  const v1 = Buffer.from(store.kv.get(keys.commitChain)!.value).toString();
  const guardKey = [...store.kv.keys()].find((k) => k.startsWith(keys.electionPrefix))!;
  const again = new Committer(store, { key: guardKey, createRevision: store.kv.get(guardKey)!.createRevision }, undefined, new FakeClock(), () => true);
  // Both start from nothing; the second's first value must not repeat the first's.
  await store.txn(undefined, [{ del: keys.commitChain }]);
  await again.commit([{ ops: put('gaffer/resources/b') }], 1);
  const v2 = Buffer.from(store.kv.get(keys.commitChain)!.value).toString();
  assert.notEqual(v1, v2);
});

test('onTxn hears of each transaction as it commits, in order, before the batch resolves', async () => {
  const { store, committer } = await setup();
  const second = gate();
  store.txnHook = async (ops) => {
    if (ops.some((o) => 'put' in o && o.put === 'gaffer/resources/b')) await second.wait;
  };
  const heard: Array<[number, number]> = [];
  let resolved = false;
  const all = committer.commit([{ ops: put('gaffer/resources/a') }, { ops: put('gaffer/resources/b') }], 0, (i, rev) => heard.push([i, rev]));
  void all.then(() => (resolved = true));
  await settle(20);
  // The first is committed and told while the second is still held.
  assert.equal(heard.length, 1);
  assert.equal(heard[0]![0], 0);
  assert.equal(resolved, false);
  second.open();
  const revs = await all;
  assert.deepEqual(heard, revs.map((r, i) => [i, r]));
});

/** A store whose answers to some transactions are lost: each applies (or not) and then throws as a call deadline would. */
class LossyStore extends MemStore {
  /** Decides, per transaction sent, whether it applies and whether its answer is lost. */
  fate: (ops: Op[]) => 'ok' | 'applied-lost' | 'not-applied' = () => 'ok';
  override async txn(...args: Parameters<MemStore['txn']>): Promise<number> {
    const f = this.fate(args[1]);
    if (f === 'not-applied') throw new UnavailableError('etcd txn failed: DEADLINE_EXCEEDED');
    const rev = await super.txn(...args);
    if (f === 'applied-lost') throw new UnavailableError('etcd txn failed: DEADLINE_EXCEEDED');
    return rev;
  }
}

const lossy = (reachable = () => true) => setup((c) => new LossyStore(c), reachable);

const written = (store: MemStore) => store.applied.flatMap((t) => t.ops.map((o) => ('put' in o ? o.put : o.del))).filter((k) => k.startsWith('gaffer/resources/'));

test('a transaction that applied but whose answer was lost commits once, at or after the revision it applied at, without failing the batch', async () => {
  const { clock, store, committer, unknown } = await lossy();
  let lost = 0;
  store.fate = (ops) => (ops.some((o) => 'put' in o && o.put === 'gaffer/resources/a') && lost++ === 0 ? 'applied-lost' : 'ok');
  const first = committer.commit([{ ops: put('gaffer/resources/a') }], 1);
  const second = committer.commit([{ ops: put('gaffer/resources/b') }], 1);
  await clock.advance(UNKNOWN_OUTCOME_PAUSE_MS * 2);
  const [revA] = await first;
  const [revB] = await second;
  const appliedAt = store.applied.find((t) => t.ops.some((o) => 'put' in o && o.put === 'gaffer/resources/a'))!.revision;
  // The next link applied before the copy was sent again: the chain's revision then is an upper bound.
  assert.ok(revA! >= appliedAt && revA! <= revB!, `${appliedAt} <= ${revA} <= ${revB}`);
  assert.deepEqual(written(store), ['gaffer/resources/a', 'gaffer/resources/b'], 'each applied once, in order');
  assert.equal(unknown(), 1);
});

test('a lost answer with nothing after it: the copy sent again finds its own value and the exact revision', async () => {
  const { clock, store, committer } = await lossy();
  let lost = 0;
  store.fate = () => (lost++ === 0 ? 'applied-lost' : 'ok');
  const first = committer.commit([{ ops: put('gaffer/resources/a') }], 1);
  await clock.advance(UNKNOWN_OUTCOME_PAUSE_MS);
  assert.deepEqual(await first, [store.applied.at(-1)!.revision]);
  assert.deepEqual(written(store), ['gaffer/resources/a']);
});

test('a transaction that did not apply and whose answer was lost is sent again and applies, still ahead of the next', async () => {
  const { clock, store, committer } = await lossy();
  let lost = 0;
  store.fate = (ops) => (ops.some((o) => 'put' in o && o.put === 'gaffer/resources/a') && lost++ < 2 ? 'not-applied' : 'ok');
  const first = committer.commit([{ ops: put('gaffer/resources/a') }], 1);
  const second = committer.commit([{ ops: put('gaffer/resources/b') }], 1);
  await clock.advance(UNKNOWN_OUTCOME_PAUSE_MS * 3);
  await first;
  await second;
  assert.deepEqual(written(store), ['gaffer/resources/a', 'gaffer/resources/b']);
});

test('an outcome still unknown after every retry fails the batch and every later one', async () => {
  const { clock, store, committer, unknown } = await lossy();
  store.fate = (ops) => (ops.some((o) => 'put' in o && o.put === 'gaffer/resources/a') ? 'not-applied' : 'ok');
  const first = committer.commit([{ ops: put('gaffer/resources/a') }], 1);
  const second = committer.commit([{ ops: put('gaffer/resources/b') }], 1);
  first.catch(() => undefined);
  second.catch(() => undefined);
  await clock.advance(UNKNOWN_OUTCOME_PAUSE_MS * (UNKNOWN_OUTCOME_RETRIES + 2));
  await assert.rejects(first, UnavailableError);
  await assert.rejects(second);
  assert.deepEqual(written(store), [], 'nothing after the failed one applied');
  assert.equal(unknown(), UNKNOWN_OUTCOME_RETRIES);
});

test('with our own lease in doubt (etcd down, quorum lost) a lost answer fails the batch at once, as before: clients hear UNAVAILABLE fast', async () => {
  const { store, committer, unknown } = await lossy(() => false);
  store.fate = () => 'not-applied';
  await assert.rejects(committer.commit([{ ops: put('gaffer/resources/a') }], 1), UnavailableError);
  assert.equal(unknown(), 0, 'not sent again');
});
