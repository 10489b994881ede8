// The etcd store against a real etcd: chained transactions (what the
// Committer relies on when etcd, or the etcd3 client retrying, applies a
// transaction whose answer was lost), pages of a range asked again, and a
// quiet watch kept current by etcd's progress notices.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cluster, waitFor } from '../harness.js';
import { startEtcd } from '#devcluster/servers.js';
import { EtcdStore } from '#platform/etcd/store.js';
import { ChainBrokenError } from '#platform/ports.js';

test('a chained transaction sent again after it applied gets its revision back; a real break is still refused', async (t) => {
  const c = await cluster({ masters: 0, workers: 0 });
  const store = await EtcdStore.connect(c.etcdEndpoints.split(','), { timeoutMs: 3000 });
  t.after(() => store.close());
  const chain = 'gaffer-test/chain';
  const link = { key: chain, expect: undefined, next: Buffer.from('t:1') };
  const ops = [{ put: 'gaffer-test/a', value: Buffer.from('a') }];
  const rev = await store.txn(undefined, ops, link);
  // The same transaction again, as after a lost answer: it applied once, and says so.
  assert.equal(await store.txn(undefined, ops, link), rev);
  assert.equal((await store.range('gaffer-test/a')).kvs[0]!.modRevision, rev, 'and it did not apply twice');
  // A later link moves the chain on; the first one sent again now finds another value: a broken chain.
  await store.txn(undefined, [{ put: 'gaffer-test/b', value: Buffer.from('b') }], { key: chain, expect: Buffer.from('t:1'), next: Buffer.from('t:2') });
  await assert.rejects(store.txn(undefined, ops, link), ChainBrokenError);
});

test('a page of a range that fails is asked again at the same revision when the caller allows it; a compacted revision is not', async (t) => {
  const c = await cluster({ masters: 0, workers: 0 });
  const store = await EtcdStore.connect(c.etcdEndpoints.split(','), { timeoutMs: 3000 });
  t.after(() => store.close());
  const n = 12_000; // three pages
  for (let i = 0; i < n; i += 100) {
    await store.txn(undefined, Array.from({ length: 100 }, (_, j) => ({ put: `gaffer-test/p/${String(i + j).padStart(6, '0')}`, value: Buffer.from('v') })));
  }
  const kv = (store as unknown as { client: { kv: { range: (...a: unknown[]) => Promise<unknown> } } }).client.kv;
  const real = kv.range.bind(kv);
  let calls = 0;
  let failOn = 2;
  kv.range = (...a: unknown[]) => (++calls === failOn ? Promise.reject(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded')) : real(...a));
  await assert.rejects(store.range('gaffer-test/p/'), /DEADLINE_EXCEEDED/, 'without retries the read fails');
  calls = 0;
  const snap = await store.range('gaffer-test/p/', undefined, { pageRetries: 2 });
  assert.equal(calls, 4, 'three pages and one of them again');
  assert.equal(snap.kvs.length, n, 'every key once');
  assert.equal(new Set(snap.kvs.map((k) => k.key)).size, n);
  // A revision compacted away is not asked for again.
  const old = snap.revision;
  await store.txn(undefined, [{ put: 'gaffer-test/p/late', value: Buffer.from('v') }]);
  await (store as unknown as { client: { kv: { compact: (r: { revision: number }) => Promise<unknown> } } }).client.kv.compact({ revision: old + 1 });
  failOn = 0;
  calls = 0;
  await assert.rejects(store.range('gaffer-test/p/', old, { pageRetries: 3 }), /compacted/);
  assert.equal(calls, 1, 'asked once');
});

test('a quiet watch resumes from what etcd last told it, not from a revision compaction has removed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gaffer-watch-'));
  const etcd = await startEtcd({ dir, progressNotifyMs: 300 });
  t.after(async () => {
    await etcd.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const store = await EtcdStore.connect(etcd.endpoints, { timeoutMs: 3000 });
  t.after(() => store.close());
  const from = (await store.range('gaffer-test/quiet/')).revision + 1;
  const seen: string[] = [];
  let reset: Error | undefined;
  const w = store.watch('gaffer-test/quiet/', from, (evs) => seen.push(...evs.map((e) => e.kv.key)), (err) => (reset = err));
  t.after(() => w.close());
  // Other keys move the revision on while the watch hears nothing.
  let head = 0;
  for (let i = 0; i < 20; i++) head = await store.txn(undefined, [{ put: 'gaffer-test/busy', value: Buffer.from(String(i)) }]);
  await waitFor('a progress notice past the writes', async () => w.resumesFrom() > head, 10_000);
  // Every revision the watch started from is compacted away; then its stream breaks.
  await (store as unknown as { client: { kv: { compact: (r: { revision: number }) => Promise<unknown> } } }).client.kv.compact({ revision: head });
  await etcd.members[0]!.restart();
  await store.txn(undefined, [{ put: 'gaffer-test/quiet/a', value: Buffer.from('a') }]);
  await waitFor('the event after the restart', async () => seen.includes('gaffer-test/quiet/a') || reset !== undefined, 20_000);
  assert.equal(reset, undefined, `the watch resumed without a reset (${reset?.message})`);
  assert.deepEqual(seen, ['gaffer-test/quiet/a']);
});
