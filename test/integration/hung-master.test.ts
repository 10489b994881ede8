// A hung master must not black-hole requests for long: with one of three
// masters SIGSTOPped, a plain NATS client with no retry logic of ours,
// sending adds one after another with a 1 s timeout, loses none after the
// first seconds. The masters run with --watchdog-ms (as `gaffer dev` and
// docker-compose do), which SIGKILLs the paused one, and the server drops its
// queue subscriptions with its connection. The client sends until the
// watchdog has ended the paused master (within 8 s), and on for 3 s after:
// none of the adds sent from a second after its end is lost. Checked right
// after an idle spell and right after a burst of 1,000 plain requests; the
// exact counts (at most 2 lost in the first 4 s) are measured by the bench
// (bench/burst.ts), not asserted here, where a slow machine could stretch them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { NatsConnection } from 'nats';
import { cluster, rawConnect, waitFor } from '../harness.js';
import { json } from '#protocol/codec.js';
import type { LocalCluster } from '#devcluster/cluster.js';
import { DEV_WATCHDOG_MS } from '#platform/watchdog.js';

/** sequential sends adds one after another while more() says so, and returns when (ms since start) each lost one was sent. */
async function sequential(nc: NatsConnection, prefix: string, t0: number, more: () => boolean): Promise<{ sent: number; lost: number[] }> {
  const lost: number[] = [];
  let sent = 0;
  for (let i = 0; more(); i++) {
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
  const t0 = performance.now();
  // When the watchdog ends the paused master (ms since the pause); the sends stop 3 s after, or at 8 s without it.
  let endedMs: number | undefined;
  void child.exited().then(() => (endedMs = performance.now() - t0));
  const { sent, lost } = await sequential(nc, phase, t0, () => {
    const now = performance.now() - t0;
    return endedMs === undefined ? now < 8000 : now < endedMs + 3000;
  });
  t.diagnostic(`${phase}: ${sent} adds with ${follower} paused, ended by its watchdog at ${endedMs?.toFixed(0)} ms; lost at ${JSON.stringify(lost)} ms`);
  assert.equal(child.running, false, `the watchdog ended the paused ${follower} within 8 s`);
  assert.ok(endedMs !== undefined);
  assert.deepEqual(lost.filter((ms) => ms >= endedMs! + 1000), [], `none lost from a second after the watchdog ended ${follower}`);
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
