// A hung master must not black-hole requests for long: with one of three
// masters SIGSTOPped, a plain NATS client with no retry logic of ours,
// sending adds one after another with a 1 s timeout, loses none after the
// first seconds. The masters run with --watchdog-ms (as `gaffer dev` and
// docker-compose do), which SIGKILLs the paused one, and the server drops its
// queue subscriptions with its connection. Checked right after an idle spell
// and right after a burst of 1,000 plain requests; the exact counts (at most
// 2 lost in the first 4 s) are measured by the bench (bench/burst.ts), not
// asserted here, where a slow machine could stretch them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { NatsConnection } from 'nats';
import { cluster, rawConnect, waitFor } from '../harness.js';
import { json } from '#protocol/codec.js';
import type { LocalCluster } from '#devcluster/cluster.js';
import { DEV_WATCHDOG_MS } from '#platform/watchdog.js';

/** sequential sends adds one after another for ms, and returns when (ms since start) each lost one was sent. */
async function sequential(nc: NatsConnection, prefix: string, ms: number): Promise<{ sent: number; lost: number[] }> {
  const t0 = performance.now();
  const lost: number[] = [];
  let sent = 0;
  for (let i = 0; performance.now() - t0 < ms; i++) {
    const at = performance.now() - t0;
    sent++;
    try {
      const m = await nc.request('resource.add', json.encode({ name: `${prefix}-${i}` }), { timeout: 1000 });
      assert.equal((json.decode(m.data) as { ok: boolean }).ok, true);
    } catch {
      lost.push(Math.round(at));
    }
  }
  return { sent, lost };
}

async function pauseOne(t: { diagnostic(s: string): void }, c: LocalCluster, nc: NatsConnection, phase: string): Promise<void> {
  const s = await c.ready(1);
  const follower = s.masters.find((m) => m !== s.leader)!;
  const child = c.masters.get(follower)!;
  child.pause();
  const { sent, lost } = await sequential(nc, phase, 10_000);
  t.diagnostic(`${phase}: ${sent} adds in 10 s with ${follower} paused; lost at ${JSON.stringify(lost)} ms`);
  assert.deepEqual(lost.filter((ms) => ms >= 8000), [], 'none lost after the first 8 s');
  assert.equal(child.running, false, `the watchdog ended the paused ${follower}`);
  child.start();
}

test('a paused master is ended by its watchdog, and a plain client loses nothing after the first seconds', async (t) => {
  const c = await cluster({ masters: 3, workers: 1, ttlSeconds: 2, watchdogMs: DEV_WATCHDOG_MS });
  await c.ready(1);
  const nc = await rawConnect(c.natsUrl);

  await t.test('right after an idle spell', async (t) => {
    await new Promise((r) => setTimeout(r, 3000));
    await pauseOne(t, c, nc, 'idle');
  });

  await t.test('right after a burst of 1,000', async (t) => {
    await waitFor('all three masters back', async () => (await c.ready(1)).masters.length === 3, 30_000);
    const replies = await Promise.allSettled(Array.from({ length: 1000 }, (_, i) => nc.request('resource.add', json.encode({ name: `burst-${i}` }), { timeout: 20_000 })));
    assert.equal(replies.filter((r) => r.status === 'fulfilled').length, 1000, 'the burst is all answered');
    await pauseOne(t, c, nc, 'burst');
  });
});
