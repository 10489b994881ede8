// /healthz on the metrics port, from real processes, and the supervisor
// `gaffer dev` runs: a process that stops answering /healthz (here a paused
// worker with no watchdog) is restarted, and answers again.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, waitFor } from '../harness.js';
import { DEV_SUPERVISOR, Supervisor } from '#devcluster/supervise.js';

async function health(url: string): Promise<{ status: number; body: { ok: boolean; checks: Record<string, string> } }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return { status: r.status, body: (await r.json()) as { ok: boolean; checks: Record<string, string> } };
}

test('/healthz and the dev supervisor', async (t) => {
  const c = await cluster({ masters: 1, workers: 1, ttlSeconds: 2, healthz: true });
  await c.ready(1);

  await t.test('a master and a worker answer 200 with their loop, NATS and etcd checks ok', async () => {
    for (const id of ['m1', 'w1']) {
      const h = await waitFor(`${id}'s /healthz to be ok`, async () => {
        const r = await health(c.healthUrl(id)!).catch(() => undefined);
        return r?.status === 200 ? r : undefined;
      }, 20_000);
      assert.deepEqual(h.body, { ok: true, checks: { loop: 'ok', nats: 'ok', etcd: 'ok' } });
    }
  });

  await t.test('a process that stops answering is restarted', async () => {
    const notes: string[] = [];
    const w1 = c.workers.get('w1')!;
    const sup = new Supervisor([{ child: w1, url: c.healthUrl('w1')! }], { ...DEV_SUPERVISOR, note: (l) => notes.push(l) });
    t.after(() => sup.stop());
    // Seen healthy once first: only then do missed probes count.
    await new Promise((r) => setTimeout(r, 2 * DEV_SUPERVISOR.intervalMs));
    const before = w1.pid;
    w1.pause();
    await waitFor('w1 restarted', async () => w1.running && w1.pid !== before, 30_000);
    assert.ok(notes.some((n) => n.includes('w1: /healthz unanswered')), notes.join('\n'));
    await waitFor('the restarted w1 to answer /healthz', async () => (await health(c.healthUrl('w1')!).catch(() => undefined))?.status === 200, 30_000);
  });
});
