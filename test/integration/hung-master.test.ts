// A hung master must not black-hole requests: with one of three masters
// SIGSTOPped, a plain NATS client with no retry logic of ours, sending adds
// one after another with a 1 s timeout, loses at most two in the first 4 s
// (those already queued to the paused master) and none after, because the
// server drops the paused connection and with it its queue subscription.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { cluster, rawConnect } from '../harness.js';
import { json } from '#protocol/codec.js';

test('a paused master loses its share of the queue group within about 2 s', async (t) => {
  const c = await cluster({ masters: 3, workers: 1, ttlSeconds: 2 });
  const s = await c.ready(1);
  const follower = s.masters.find((m) => m !== s.leader)!;
  const nc = await rawConnect(c.natsUrl);
  c.masters.get(follower)!.pause();
  t.after(() => c.masters.get(follower)!.resume());
  const t0 = performance.now();
  const lost: number[] = [];
  let sent = 0;
  for (let i = 0; performance.now() - t0 < 10_000; i++) {
    const at = performance.now() - t0;
    sent++;
    try {
      const m = await nc.request('resource.add', json.encode({ name: `hung-${i}` }), { timeout: 1000 });
      const reply = json.decode(m.data) as { ok: boolean };
      assert.equal(reply.ok, true);
    } catch {
      lost.push(Math.round(at));
    }
  }
  t.diagnostic(`${sent} adds in 10 s with ${follower} paused; lost at ${JSON.stringify(lost)} ms`);
  const early = lost.filter((ms) => ms < 4000);
  const late = lost.filter((ms) => ms >= 4000);
  assert.ok(early.length <= 2, `lost ${early.length} in the first 4 s`);
  assert.deepEqual(late, [], 'none lost after the first 4 s');
});
