// Sharded resources against real nats-server (JetStream), etcd and worker
// processes, with the test kind in test/fixtures/kinds/shards.mjs passing
// items between shards: a 3-shard resource completes exactly once with every
// item handled once; a shard's worker SIGKILLed mid-run: what it held comes
// back to the next owner, what it acknowledged does not; a shard's worker
// SIGSTOPped past its lease and resumed stores, sends and acks nothing
// after its fence; a shard that returned runs again for items sent to it;
// one shard failed for good fails the whole; a busy mark (ctx.busy) holds
// completion, and a shard reads its siblings' keys (ctx.store.getShard).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { cluster, rawConnect, Recorder, waitFor } from '../harness.js';
import { readResults } from '#platform/nats/results.js';
import { SHARDS_STREAM } from '#protocol/subjects.js';
import type { Resource } from '#protocol/messages.js';
import type { GafferClient } from '#client/client.js';
import { addAndWait } from '#client/wait.js';
import type { NatsConnection } from 'nats';

const KINDS = fileURLToPath(new URL('../../../test/fixtures/kinds/shards.mjs', import.meta.url));
const WORKER_ARGS = ['--tasks', KINDS, '--stop-grace-ms', '500'];

type Rec = Record<string, any>;

async function settled(client: GafferClient, name: string, states: string[], timeoutMs = 60000): Promise<Resource> {
  return waitFor(`${name} to be ${states.join(' or ')}`, async () => {
    const r = await client.get(name);
    return states.includes(r.state) ? r : undefined;
  }, timeoutMs);
}

async function results(nc: NatsConnection, name: string): Promise<Rec[]> {
  const out: Rec[] = [];
  for await (const r of readResults(nc, name)) out.push(r.item as Rec);
  return out;
}

/** checkRelay: every item done once, every (item, hop) delivered, and no acknowledged item delivered again in a later attempt. */
function checkRelay(rs: Rec[], items: number, hops: number): { redelivered: number } {
  const done = rs.filter((r) => r.type === 'done').map((r) => r.key as string);
  assert.equal(done.length, items, 'every item done, each stored once');
  assert.equal(new Set(done).size, items);
  const deliveries = new Map<string, Rec[]>();
  for (const r of rs.filter((x) => x.type === 'delivery')) {
    const k = `${r.key}:${r.hop}`;
    deliveries.set(k, [...(deliveries.get(k) ?? []), r]);
  }
  assert.equal(deliveries.size, items * (hops + 1), 'every hop of every item delivered');
  let redelivered = 0;
  for (const a of rs.filter((x) => x.type === 'acked')) {
    const later = (deliveries.get(`${a.key}:${a.hop}`) ?? []).filter((d) => d.to.shard === a.by.shard && d.to.attempt > a.by.attempt);
    assert.deepEqual(later, [], `${a.key} hop ${a.hop} was acknowledged by attempt ${a.by.attempt} and delivered again`);
  }
  for (const ds of deliveries.values()) if (ds.length > 1) redelivered++;
  return { redelivered };
}

test('sharded resources', async (t) => {
  const c = await cluster({ masters: 2, workers: 0, ttlSeconds: 2 });
  for (const id of ['w1', 'w2', 'w3']) c.startWorker(id, WORKER_ARGS);
  await c.ready(3);
  const client = await c.client();
  const nc = await rawConnect(c.natsUrl);
  const events = await Recorder.start<Rec>(c.natsUrl, 'events.>');
  const completedEvents = (name: string) => events.items.filter((e) => e.subject === 'events.task.completed' && e.data.name === name).length;

  await t.test('3 shards on 3 workers pass items around and complete once, every item handled once', async () => {
    const started = Date.now();
    const r0 = (await client.add('relay', { kind: 'relay', shards: 3, items: 30, hops: 3 })).resource;
    assert.equal(r0.shards?.length, 3);
    const r = await settled(client, 'relay', ['completed', 'failed']);
    t.diagnostic(`30 items x 4 deliveries through 3 shard queues, add to completed: ${Date.now() - started} ms`);
    assert.equal(r.state, 'completed', r.error);
    assert.equal(r.shards!.every((s) => s.state === 'completed' && s.worker === null), true);
    const rs = await results(nc, 'relay');
    const { redelivered } = checkRelay(rs, 30, 3);
    assert.equal(redelivered, 0, 'without faults nothing is delivered twice');
    const spread = new Set(rs.filter((x) => x.type === 'delivery').map((x) => x.to.shard));
    assert.equal(spread.size, 3);
    await waitFor('the completion event', async () => completedEvents('relay') >= 1);
    assert.equal(completedEvents('relay'), 1, 'completed exactly once');
    const placed = events.items.filter((e) => e.subject === 'events.resource.placed' && String(e.data.name).startsWith('relay/'));
    assert.equal(new Set(placed.map((e) => e.data.worker)).size, 3, 'one shard per worker');
    const list = await client.list();
    assert.deepEqual(list.map((x) => x.name), ['relay'], 'shards are listed with their resource');
  });

  await t.test("a shard's worker SIGKILLed mid-run: held items go to the next owner, acknowledged ones do not, and it completes", async () => {
    await client.add('killed', { kind: 'relay', shards: 3, items: 60, hops: 3, slowMs: 150, hold: 4 });
    const before = await waitFor('items flowing', async () => {
      const r = await client.get('killed');
      const handled = (r.progress as { handled?: number } | undefined)?.handled ?? 0;
      return handled >= 20 && r.shards?.[1]?.worker ? r : undefined;
    }, 60000);
    const victim = before.shards![1]!.worker!;
    await c.workers.get(victim)!.kill();
    const killedAt = Date.now();
    await waitFor('shard 1 to move', async () => {
      const s = (await client.get('killed')).shards![1]!;
      return s.worker !== victim && s.worker !== null && s.attempt > before.shards![1]!.attempt;
    }, 30000);
    const r = await settled(client, 'killed', ['completed', 'failed'], 120000);
    assert.equal(r.state, 'completed', r.error);
    t.diagnostic(`kill to completed: ${Date.now() - killedAt} ms (held items come back after ack_wait, 10 s)`);
    const { redelivered } = checkRelay(await results(nc, 'killed'), 60, 3);
    t.diagnostic(`items delivered again after the kill: ${redelivered}`);
    assert.ok(redelivered >= 1, 'the items the killed shard held were delivered to its next owner');
    await waitFor('the completion event', async () => completedEvents('killed') >= 1);
    assert.equal(completedEvents('killed'), 1);
    c.startWorker(victim, WORKER_ARGS);
    await c.ready(3);
  });

  await t.test("a drained shard hands what it holds to its next owner at once, and the resource completes", async () => {
    await client.add('drained', { kind: 'relay', shards: 3, items: 45, hops: 3, slowMs: 150, hold: 4 });
    const before = await waitFor('items flowing', async () => {
      const r = await client.get('drained');
      const handled = (r.progress as { handled?: number } | undefined)?.handled ?? 0;
      return handled >= 15 && r.shards?.[0]?.state === 'running' ? r : undefined;
    }, 60000);
    const from = before.shards![0]!.worker!;
    const drainedAt = Date.now();
    const res = await client.drain(from);
    assert.ok(res.moved >= 1);
    const r = await settled(client, 'drained', ['completed', 'failed'], 120000);
    assert.equal(r.state, 'completed', r.error);
    t.diagnostic(`drain to completed: ${Date.now() - drainedAt} ms`);
    checkRelay(await results(nc, 'drained'), 45, 3);
    await client.uncordon(from);
  });

  await t.test("a shard's worker SIGSTOPped past its lease, then resumed, sends, acks and stores nothing after its fence", async () => {
    await client.add('paused', { kind: 'relay', shards: 3, items: 45, hops: 3, slowMs: 150, hold: 4 });
    const before = await waitFor('items flowing', async () => {
      const r = await client.get('paused');
      const handled = (r.progress as { handled?: number } | undefined)?.handled ?? 0;
      return handled >= 15 && r.shards?.[2]?.state === 'running' ? r : undefined;
    }, 60000);
    const victim = before.shards![2]!.worker!;
    const oldAttempt = before.shards![2]!.attempt;
    const w = c.workers.get(victim)!;
    w.pause();
    try {
      await waitFor('shard 2 to move', async () => {
        const s = (await client.get('paused')).shards![2]!;
        return s.worker !== victim && s.attempt > oldAttempt;
      }, 30000);
    } finally {
      w.resume();
    }
    const resumedAt = Date.now();
    const r = await settled(client, 'paused', ['completed', 'failed'], 120000);
    assert.equal(r.state, 'completed', r.error);
    const rs = await results(nc, 'paused');
    checkRelay(rs, 45, 3);
    const late = rs.filter((x) => {
      const who = x.type === 'delivery' ? x.to : x.by;
      return who?.shard === 2 && who.attempt === oldAttempt && (x.at ?? 0) >= resumedAt;
    });
    assert.deepEqual(late, [], 'nothing of the fenced attempt was stored after it resumed');
    const sentLate = rs.filter((x) => x.type === 'delivery' && x.item.by.shard === 2 && x.item.by.attempt === oldAttempt && x.item.sentAt >= resumedAt);
    assert.deepEqual(sentLate, [], 'nothing it sent after it resumed was stored');
    assert.equal(completedEvents('paused'), 1);
  });

  await t.test('the leader SIGKILLed mid-run: the next one learns the shards\' activity again and completes it once', async () => {
    await client.add('failover', { kind: 'relay', shards: 3, items: 45, hops: 3, slowMs: 100, hold: 4 });
    await waitFor('items flowing', async () => {
      const handled = ((await client.get('failover')).progress as { handled?: number } | undefined)?.handled ?? 0;
      return handled >= 15 ? true : undefined;
    }, 60000);
    const leader = (await client.status()).leader;
    await c.masters.get(leader)!.kill();
    const r = await settled(client, 'failover', ['completed', 'failed'], 120000);
    assert.equal(r.state, 'completed', r.error);
    checkRelay(await results(nc, 'failover'), 45, 3);
    await waitFor('the completion event', async () => completedEvents('failover') >= 1);
    assert.equal(completedEvents('failover'), 1);
    c.startMaster(leader);
    await c.ready(3);
  });

  await t.test('add --wait returns once every shard runs, naming their workers', async () => {
    const res = await addAndWait(client, 'waited', { shards: 3 }, { deadline: Date.now() + 30000 });
    assert.deepEqual(res.runningOn.split(',').sort(), ['w1', 'w2', 'w3']);
    await client.delete('waited');
  });

  await t.test('a shard that returned runs again for items sent to it; the resource completes after', async () => {
    await client.add('early', { kind: 'early', shards: 3 });
    const r = await settled(client, 'early', ['completed', 'failed']);
    assert.equal(r.state, 'completed', r.error);
    const got = (await results(nc, 'early')).map((x) => x.shard).sort();
    assert.deepEqual(got, [1, 2]);
    assert.deepEqual((r.result as { shards: Array<{ index: number }> }).shards.map((x) => x.index), [0, 1, 2]);
  });

  await t.test('a busy mark (ctx.busy) holds completion while its shard awaits the inbox; a shard reads its siblings\' keys (ctx.store.getShard), in a kind module\'s thread', async () => {
    await client.add('siblings', { kind: 'siblings', shards: 3 });
    const r = await settled(client, 'siblings', ['completed', 'failed']);
    assert.equal(r.state, 'completed', r.error);
    const got = await results(nc, 'siblings');
    assert.deepEqual(got, [{ read: [{ from: 0 }, { from: 1 }, { from: 2 }] }], 'emitted before completion, every sibling\'s key read');
  });

  await t.test('one shard failed for good fails the resource and stops the others; delete drops its queues', async () => {
    await client.add('brittle', { kind: 'brittle', shards: 3, restart: { attempts: 2, delayMs: 100, maxDelayMs: 200 } });
    const r = await settled(client, 'brittle', ['failed', 'completed']);
    assert.equal(r.state, 'failed');
    assert.match(r.error ?? '', /shard 1 failed: shard 1 breaks/);
    assert.equal(r.shards!.every((s) => s.worker === null), true, 'every shard stopped');
    const id = (await client.get('killed')).id;
    await client.delete('killed');
    const jsm = await nc.jetstreamManager();
    await waitFor('its consumers to go', async () => {
      const names: string[] = [];
      for await (const ci of jsm.consumers.list(SHARDS_STREAM)) names.push(ci.name);
      return !names.some((n) => n.startsWith(id));
    }, 10000);
  });
  await nc.close();
});
