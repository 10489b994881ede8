// QueueCounter (src/platform/nats/shard-queues.ts) on a stand-in for
// JetStream's stream info: a count is refused with no stream leader, when
// the last sequence went back, and while a replica is not current, but only
// for the grace: nats-server 2.9.10 can leave a replica behind for good, and
// a completion that waited on it would wait forever.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NatsConnection } from 'nats';
import { QueueCounter } from '#platform/nats/shard-queues.js';
import { UnavailableError } from '#protocol/errors.js';
import { subjects } from '#protocol/subjects.js';

interface Info {
  state: { last_seq: number; subjects?: Record<string, number> };
  cluster?: { leader?: string; replicas?: Array<{ name: string; current: boolean }> };
}

function counterOn(info: () => Info, graceMs: number): QueueCounter {
  const nc = { jetstreamManager: async () => ({ streams: { info: async () => info() } }) } as unknown as NatsConnection;
  return new QueueCounter(nc, graceMs);
}

const unavailable = (re: RegExp) => (e: unknown) => e instanceof UnavailableError && re.test(e.message);

test('a count: refused with no leader, or a sequence that went back; a replica behind is waited on for the grace only', async () => {
  let info: Info = { state: { last_seq: 10, subjects: { [subjects.shardQueue('r', 1)]: 3 } }, cluster: { leader: 'n1', replicas: [{ name: 'n2', current: true }] } };
  const patient = counterOn(() => info, 1e9);
  assert.deepEqual(await patient.count('r', 2), [0, 3]);
  info = { ...info, cluster: { replicas: [{ name: 'n2', current: true }] } };
  await assert.rejects(patient.count('r', 2), unavailable(/no leader/));
  info = { ...info, state: { last_seq: 4 }, cluster: { leader: 'n1' } };
  await assert.rejects(patient.count('r', 2), unavailable(/went back/));
  assert.deepEqual(await patient.count('r', 2), [0, 0], 'taken from the new base');
  info = { ...info, cluster: { leader: 'n1', replicas: [{ name: 'n2', current: false }] } };
  await assert.rejects(patient.count('r', 2), unavailable(/not current/));
  await assert.rejects(patient.count('r', 2), unavailable(/not current/), 'still within the grace');
  const done = counterOn(() => info, 0);
  assert.deepEqual(await done.count('r', 2), [0, 0], 'past the grace the leader\'s count stands');
});
