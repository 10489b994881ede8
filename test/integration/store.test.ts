// The etcd store's chained transactions against a real etcd: what the
// Committer relies on when etcd (or the etcd3 client, retrying) applies a
// transaction whose answer was lost.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster } from '../harness.js';
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
