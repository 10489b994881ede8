// The election on a real etcd: a leader that hands over (after a failed
// commit, actors/leader/leader.ts) is followed at once by the next candidate,
// its old guard fences nothing more, and it stands again behind the new leader.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, waitFor } from '../harness.js';
import { EtcdStore } from '#platform/etcd/store.js';
import { Election } from '#platform/etcd/election.js';
import { leaseTiming } from '#platform/etcd/lease.js';
import { NotLeaderError } from '#protocol/errors.js';
import type { Guard } from '#platform/ports.js';

test('handOver: the next candidate leads at once, the old guard is fenced, and the old leader stands again behind it', async (t) => {
  const c = await cluster({ masters: 0, workers: 0 });
  const store = await EtcdStore.connect(c.etcdEndpoints.split(','), { timeoutMs: 3000 });
  const guards = new Map<string, Guard>();
  const stopped: string[] = [];
  const elect = (id: string) =>
    new Election(store, id, leaseTiming(10), {
      onLeaderChange: () => undefined,
      onStartedLeading: (g) => void guards.set(id, g),
      onStoppedLeading: (reason) => void stopped.push(`${id}: ${reason}`),
    });
  const m1 = elect('m1');
  const m2 = elect('m2');
  t.after(async () => {
    await Promise.all([m1.close(), m2.close()]);
    store.close();
  });
  await m1.start();
  await waitFor('m1 leads', async () => guards.has('m1'), 5000);
  assert.equal(m1.handOver('alone'), false, 'with nobody to hand over to, nothing changes');
  await m2.start();
  await waitFor('m1 sees m2 stand', async () => m1.members.length === 2, 5000);
  const old = guards.get('m1')!;
  assert.equal(m1.handOver('commit failed'), true);
  assert.deepEqual(stopped, ['m1: commit failed']);
  await waitFor('m2 leads', async () => guards.has('m2'), 5000);
  await assert.rejects(store.txn(old, [{ put: 'gaffer-test/x', value: Buffer.from('late') }]), NotLeaderError);
  await waitFor('m1 stands again, behind m2', async () => m1.members.join() === 'm2,m1' && m2.members.join() === 'm2,m1', 10_000);
  assert.equal(m1.currentLeader?.id, 'm2');
  assert.equal(m1.handOver('not leading'), false);
});
