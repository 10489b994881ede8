// The contract is plain NATS: a client with its own NATS library and none of
// gaffer's code sends `resource.add` and gets an answer, bursts included. A
// raw nats.js client (no retries) sends 1,000 adds at once after an idle
// spell, then keeps 64 in flight for a few seconds: every one is answered ok,
// none meets "no responders". Then Debian's C client (libnats, compiled here
// with gcc) sends a burst of 100, as `nats req` would.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from 'nats';
import { cluster } from '../harness.js';
import { plainAdd } from '../fixtures/plain-add.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const C_SOURCE = join(ROOT, 'test', 'integration', 'c', 'burst.c');

interface Tally {
  ok: number;
  noResponders: number;
  timeout: number;
  other: string[];
}

/** add sends one plain request and counts how it ended. */
async function add(nc: NatsConnection, name: string, t: Tally): Promise<void> {
  const r = await plainAdd(nc, name, 20_000);
  if (r.end === 'other') t.other.push(r.what);
  else t[r.end]++;
}

const tally = (): Tally => ({ ok: 0, noResponders: 0, timeout: 0, other: [] });

const gcc = spawnSync('gcc', ['--version']).status === 0;
const libnats = existsSync('/usr/include/nats/nats.h');
const skipC = !gcc ? 'gcc is not installed' : !libnats ? 'libnats is not installed (Debian: apt-get install -y libnats-dev)' : false;

test('a plain NATS client', async (t) => {
  const c = await cluster({ masters: 3, workers: 3, ttlSeconds: 2 });
  await c.ready(3);
  const nc = await connect({ servers: c.natsUrl });
  t.after(() => nc.close());

  await t.test('1,000 concurrent adds after an idle spell: all answered ok, no "no responders"', async () => {
    // Idle: no client traffic since the cluster came up.
    await new Promise((r) => setTimeout(r, 5000));
    const t = tally();
    await Promise.all(Array.from({ length: 1000 }, (_, i) => add(nc, `burst-${i}`, t)));
    assert.deepEqual(t, { ok: 1000, noResponders: 0, timeout: 0, other: [] });
  });

  await t.test('64 in flight for 4 s: all answered ok, 0 errors', async () => {
    const t = tally();
    const until = Date.now() + 4000;
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (Date.now() < until) await add(nc, `load-${next++}`, t);
      }),
    );
    assert.ok(t.ok > 64, `${t.ok} answered`);
    assert.deepEqual({ ...t, ok: 0 }, { ok: 0, noResponders: 0, timeout: 0, other: [] });
  });

  await t.test('the C client (libnats): a burst of 100 concurrent requests, all answered ok', { skip: skipC }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'gaffer-c-client-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const bin = join(dir, 'burst');
    const cc = spawnSync('gcc', ['-O1', '-o', bin, C_SOURCE, '-lnats', '-lpthread'], { encoding: 'utf8' });
    assert.equal(cc.status, 0, `gcc failed:\n${cc.stderr}`);
    // Idle again first, so the burst meets the masters as a first one would.
    await new Promise((r) => setTimeout(r, 3000));
    const url = c.natsUrl.split(',')[0]!;
    const run = spawnSync(bin, [url, 'resource.add', '100', '20000', 'c-client'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, `the C client failed:\n${run.stderr}`);
    assert.equal(run.stdout.trim(), 'ok 100 no_responders 0 timeout 0 other 0', run.stderr);
  });
});
