// WorkerLiveness: revoking a worker leaves a fencing note first, and says
// when the worker has certainly stopped its tasks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerLiveness, FENCE_SLACK_MS } from '../../actors/leader/liveness.js';
import { Prober } from '../../src/platform/nats/prober.js';
import { keys } from '../../src/protocol/keys.js';
import { packed } from '../../src/protocol/codec.js';
import { logger } from '../../src/platform/log.js';
import { FakeClock } from '../fakes/clock.js';
import { MemBus } from '../fakes/bus.js';
import { MemStore } from '../fakes/store.js';

test('a revoke leaves a fencing note before the lease goes, and fencedBy counts the window from the revoke', async () => {
  const clock = new FakeClock();
  const store = new MemStore(clock);
  const prober = new Prober(new MemBus(clock), { intervalMs: 100_000, misses: 2, stableMs: 0 }, clock);
  const lease = await store.grantLease(10);
  await store.txn(undefined, [{ put: keys.worker('w1'), value: packed.encode({ id: 'w1' }), lease }]);
  const liveness = new WorkerLiveness(store, prober, logger(), (id) => (id === 'w1' ? lease : undefined), clock);
  liveness.track('w1', 800);
  const revoke = store.revokeLease.bind(store);
  let noteAtRevoke: unknown;
  store.revokeLease = async (id) => {
    const notes = await store.range(keys.fencingPrefix);
    noteAtRevoke = notes.kvs.map((kv) => [kv.key, packed.decode(kv.value)]);
    return revoke(id);
  };
  await clock.advance(1000);
  await liveness.revoke('w1');
  const revokedAt = clock.now();
  assert.deepEqual(noteAtRevoke, [[keys.fencing('w1'), { epoch: lease, fenceMs: 800 }]], 'the note is there before the lease goes');
  assert.equal((await store.range(keys.worker('w1'))).kvs.length, 0, 'revoked');
  assert.equal(liveness.fencedBy('w1', lease), revokedAt + 800 + FENCE_SLACK_MS);
  assert.equal(liveness.fencedBy('w1', 'another-incarnation'), undefined);
  liveness.stop();
  prober.close();
});
