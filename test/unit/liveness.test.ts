// WorkerLiveness: revoking a worker leaves a fencing note first, and says
// when the worker has certainly stopped its tasks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerLiveness, FENCE_SLACK_MS } from '#actors/leader/liveness.js';
import { Prober } from '#platform/nats/prober.js';
import { keys } from '#protocol/keys.js';
import { packed } from '#protocol/codec.js';
import { logger } from '#platform/log.js';
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
  liveness.track('w1', 800, lease);
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

test('a revoke stays known across a reload of the same incarnation; a noted one counts its window from when its key is seen gone', async () => {
  const clock = new FakeClock();
  const store = new MemStore(clock);
  const prober = new Prober(new MemBus(clock), { intervalMs: 100_000, misses: 2, stableMs: 0 }, clock);
  const liveness = new WorkerLiveness(store, prober, logger(), (id) => (id === 'w1' ? 'L1' : 'E2'), clock);
  liveness.track('w1', 800, 'L1');
  await liveness.revoke('w1');
  const by = liveness.fencedBy('w1', 'L1');
  // A reload tracks every live worker again while the revoke is in flight.
  liveness.track('w1', 800, 'L1');
  assert.equal(liveness.fencedBy('w1', 'L1'), by, 'still known');
  liveness.track('w1', 800, 'L2');
  assert.equal(liveness.fencedBy('w1', 'L1'), undefined, 'a new incarnation has fenced the old one');
  // Another leader's note for an incarnation still registered at our load (tracked first, as a load does).
  liveness.track('w2', 1200, 'E2');
  liveness.noted('w2', 'E2');
  assert.equal(liveness.fencedBy('w2', 'E2'), clock.now() + 1200 + FENCE_SLACK_MS, 'its window counts from when its key is seen gone');
  liveness.stop();
  prober.close();
});
