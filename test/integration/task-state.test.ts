// The task store (ctx.store) on a real nats-server 2.9 with JetStream: the
// bucket is ensured idempotently by several masters at once and read by
// nats.js as a KV bucket (direct get included); values round-trip; a key
// written again keeps only its last value; resources never see each other's
// keys; a deleted key reads as absent; and without the bucket a read fails
// fast and typed.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { startNats, type NatsServer } from '#devcluster/servers.js';
import { ensureTaskStateBucket, TASK_STATE_STREAM, TaskStateStore } from '#platform/nats/task-state.js';
import { UnavailableError } from '#protocol/errors.js';
import { StoreKeyError } from '#protocol/task-state.js';

describe('the task store on JetStream KV', () => {
  let dir: string;
  let server: NatsServer;
  let bare: NatsServer;
  const conns: NatsConnection[] = [];
  const open = async (url: string) => {
    const nc = await connect({ servers: url, reconnect: false });
    conns.push(nc);
    return nc;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gaffer-task-state-'));
    server = await startNats({ dir: join(dir, 'nats') });
    bare = await startNats({ dir: join(dir, 'bare') });
  });
  after(async () => {
    await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
    await server?.stop();
    await bare?.stop();
    if (dir && process.env.GAFFER_KEEP_LOGS !== '1') rmSync(dir, { recursive: true, force: true });
  });

  it('is created idempotently by several masters at once, as a KV bucket with direct get, one value per key', async () => {
    const [a, b] = [await open(server.url), await open(server.url)];
    await Promise.all([ensureTaskStateBucket(a), ensureTaskStateBucket(b), ensureTaskStateBucket(a)]);
    await ensureTaskStateBucket(b, { maxBytes: 2 ** 30 - 1 });
    const info = await (await a.jetstreamManager()).streams.info(TASK_STATE_STREAM);
    assert.equal(info.config.max_bytes, 2 ** 30 - 1, 'an existing bucket is brought to the new configuration');
    assert.equal(info.config.max_msgs_per_subject, 1);
    assert.equal(info.config.allow_direct, true);
    const kvStatus = await (await (await a.jetstream().views.kv('GAFFER_TASK_STATE', { bindOnly: true })).status());
    assert.equal(kvStatus.history, 1, 'nats.js reads it as a KV bucket');
  });

  it('round-trips values per resource, keeps the last write, and reads deleted keys as absent', async () => {
    const nc = await open(server.url);
    await ensureTaskStateBucket(nc);
    const store = new TaskStateStore(nc);
    const value = { e: '"abc-v1"', m: 'Tue, 01 Dec 2026 00:00:00 GMT', l: ['http://x/p/1.html', 'ü'], n: 3 };
    assert.equal(await store.get('r1', 'p.00ff'), undefined);
    await store.put('r1', 'p.00ff', value);
    assert.deepEqual(await store.get('r1', 'p.00ff'), value);
    assert.equal(await store.get('r2', 'p.00ff'), undefined, "another resource's key");
    await store.put('r1', 'p.00ff', { v: 2 });
    assert.deepEqual(await store.get('r1', 'p.00ff'), { v: 2 });
    // A second connection (another worker) reads what the first wrote.
    assert.deepEqual(await new TaskStateStore(await open(server.url)).get('r1', 'p.00ff'), { v: 2 });
    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info(TASK_STATE_STREAM, { subjects_filter: '$KV.GAFFER_TASK_STATE.r1.>' });
    assert.equal(info.state.subjects?.['$KV.GAFFER_TASK_STATE.r1.p.00ff'], 1, 'history 1: only the last write is kept');
    await store.delete('r1', 'p.00ff');
    assert.equal(await store.get('r1', 'p.00ff'), undefined);
    await assert.rejects(store.put('r1', 'a.*', 1), StoreKeyError);
    await assert.rejects(store.get('r1', ''), StoreKeyError);
  });

  it('without the bucket, fails fast with UnavailableError', async () => {
    const store = new TaskStateStore(await open(bare.url), { timeoutMs: 2000 });
    const t0 = Date.now();
    await assert.rejects(store.get('r1', 'k'), UnavailableError);
    assert.ok(Date.now() - t0 < 5000);
  });
});
