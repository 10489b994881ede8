// Fleet operations against real processes: a drain of a worker holding 200
// resources moves them all with no overlap (task logs compared by time) and
// checkpointed tasks resume; a fourth worker beside three loaded ones gets its
// share in rounds within the limits, with no overlap; constraints and
// preferences place as specified; dry-run writes nothing and agrees with the
// real add.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { cluster, Recorder, waitFor } from '../harness.js';
import { buildRuns, findOverlaps, parseWorkerLog } from '#chaos/runs.js';
import type { LocalCluster } from '#devcluster/cluster.js';
import type { GafferClient } from '#client/client.js';

const EXAMPLES = fileURLToPath(new URL('../../../examples/kinds.mjs', import.meta.url));
/** Resources the drain test moves (GAFFER_DRAIN_N=1000 for the closing figure; 200 in npm test). */
const DRAIN_N = Number(process.env.GAFFER_DRAIN_N ?? 200);

/** overlaps reads every worker's task log and returns runs of one resource on two workers at once. */
function overlaps(c: LocalCluster): ReturnType<typeof findOverlaps> {
  const lines = [...c.workers.keys()].flatMap((id) => {
    const f = join(c.dir, `${id}.log`);
    return existsSync(f) ? parseWorkerLog(id, readFileSync(f, 'utf8')).lines : [];
  });
  return findOverlaps(buildRuns(lines, [], Date.now()).runs);
}

async function allRunning(client: GafferClient, n: number, timeoutMs = 60_000): Promise<void> {
  await waitFor(`${n} resources running`, async () => {
    const list = await client.list();
    return list.length === n && list.every((r) => r.state === 'running');
  }, timeoutMs, 200);
}

test(`fleet: drain ${DRAIN_N} resources with stop-before-start handoffs, checkpoints resumed, no overlap`, async (t) => {
  const c = await cluster({ masters: 2, workers: 0, ttlSeconds: 2, capacity: 1000 });
  for (const id of ['w1', 'w2', 'w3']) c.startWorker(id, ['--tasks', EXAMPLES]);
  await c.ready(3);
  const client = await c.client();
  // Everything on w1 first: the others cordoned while we fill it.
  await client.cordon('w2');
  await client.cordon('w3');
  await Promise.all(Array.from({ length: DRAIN_N - 5 }, (_, i) => client.add(`r${String(i).padStart(4, '0')}`)));
  for (let i = 0; i < 5; i++) await client.add(`count${i}`, { kind: 'countdown', from: 100_000, stepMs: 20 });
  await allRunning(client, DRAIN_N);
  // Each countdown has taken a step (so a checkpoint below its start exists)
  // before the drain: the check below is that it resumes from there.
  await waitFor('every countdown to take a step', async () => {
    const left = await Promise.all(Array.from({ length: 5 }, async (_, i) => ((await client.get(`count${i}`)).progress as { left?: number } | undefined)?.left));
    return left.every((n) => n !== undefined && n < 100_000);
  }, 60_000, 200);
  await client.uncordon('w2');
  await client.uncordon('w3');
  const drained = await Recorder.start<{ worker: string; moved: number }>(c.natsUrl, 'events.worker.drained');
  const t0 = performance.now();
  const r = await client.drain('w1');
  assert.deepEqual({ moved: r.moved, remaining: r.remaining }, { moved: DRAIN_N, remaining: 0 });
  await waitFor('worker.drained', async () => drained.items.some((e) => e.data.worker === 'w1'), 60_000);
  const ms = Math.round(performance.now() - t0);
  t.diagnostic(`drain of ${DRAIN_N} resources: ${ms} ms from request to worker.drained`);
  await allRunning(client, DRAIN_N);
  const s = await client.status();
  const w1 = s.workers.find((w) => w.id === 'w1')!;
  assert.equal(w1.resources, 0);
  assert.equal(w1.cordoned, true);
  assert.equal(w1.draining, false);
  assert.deepEqual((await client.workerStatus('w1')).running, []);
  assert.deepEqual(overlaps(c), [], 'no resource ran on two workers at once');
  // The countdowns resumed from their checkpoints, not from the start. A
  // task thread logs this once it has loaded, after it is reported started.
  const resumedLines = () =>
    ['w2', 'w3']
      .map((id) => readFileSync(join(c.dir, `${id}.log`), 'utf8'))
      .join('\n')
      .split('\n')
      .filter((l) => l.includes('"counting down"'))
      .map((l) => JSON.parse(l) as { name: string; resumeAt: number; from: number });
  await waitFor('5 countdowns to resume on w2 and w3', async () => resumedLines().length >= 5, 30_000);
  const resumed = resumedLines();
  assert.equal(resumed.length, 5);
  for (const x of resumed) assert.ok(x.resumeAt < x.from, `${x.name} resumed at ${x.resumeAt} of ${x.from}`);
});

test('fleet: a fourth worker beside three loaded ones is filled in rounds to within one of even, with no overlap', async () => {
  const c = await cluster({ masters: 1, workers: 3, ttlSeconds: 2, capacity: 1000 });
  await c.ready(3);
  const client = await c.client();
  await Promise.all(Array.from({ length: 90 }, (_, i) => client.add(`r${String(i).padStart(2, '0')}`)));
  await allRunning(client, 90);
  const moved = await Recorder.start<{ name: string; to: string; reason: string; at: string }>(c.natsUrl, 'events.resource.moved');
  c.startWorker('w4');
  await waitFor('the load to even out', async () => {
    const loads = (await client.status()).workers.map((w) => w.resources);
    return loads.length === 4 && Math.max(...loads) - Math.min(...loads) <= 1;
  }, 60_000, 200);
  await allRunning(client, 90);
  const moves = moved.items.map((m) => m.data).filter((m) => m.reason === 'rebalance');
  assert.ok(moves.length >= 21 && moves.length <= 23, `about a quarter moved: ${moves.length}`);
  assert.ok(moves.every((m) => m.to === 'w4'));
  // Rounds: at most 9 (10% of 90) moves in each, and rounds at least the interval apart.
  const rounds = new Map<number, number>();
  for (const m of moved.items) rounds.set(Math.floor(m.at / 1000), (rounds.get(Math.floor(m.at / 1000)) ?? 0) + 1);
  for (const [, n] of rounds) assert.ok(n <= 9, `a round moved ${n}`);
  assert.deepEqual(overlaps(c), [], 'no resource ran on two workers at once');
});

test('fleet: constraints and preferences place as specified; dry-run writes nothing and agrees with the add', async () => {
  const c = await cluster({ masters: 1, workers: 0, ttlSeconds: 2 });
  c.startWorker('eu1', ['--label', 'zone=eu']);
  c.startWorker('us1', ['--label', 'zone=us', '--label', 'disk=ssd']);
  await c.ready(2);
  const client = await c.client();
  const s = await client.status();
  assert.deepEqual(s.workers.find((w) => w.id === 'us1')!.labels, { zone: 'us', disk: 'ssd' });
  const eu = { constraints: [{ key: 'zone', op: 'in' as const, values: ['eu'] }] };
  const dry = await client.dryRun('pinned', eu);
  assert.equal(dry.worker, 'eu1');
  assert.deepEqual(dry.candidates.map((x) => ('score' in x ? x.worker : `${x.worker}: ${x.excluded}`)), ['eu1', 'us1: constraint zone in [eu]']);
  await assert.rejects(client.get('pinned'), (e: { code?: string }) => e.code === 'NOT_FOUND', 'dry-run wrote nothing');
  const added = await client.add('pinned', eu);
  assert.equal(added.resource.worker, dry.worker);
  const prefers = await client.add('fast', { prefer: [{ key: 'disk', op: 'in', values: ['ssd'] }] });
  assert.equal(prefers.resource.worker, 'us1');
  const nowhere = await client.add('asia', { constraints: [{ key: 'zone', op: 'in', values: ['asia'] }] });
  assert.equal(nowhere.resource.state, 'pending');
  assert.match(nowhere.resource.reason ?? '', /constraint zone in \[asia\]/);
  const ex = await client.explain('asia');
  assert.equal(ex.worker, null);
  assert.equal(ex.candidates.length, 2);
  c.startWorker('as1', ['--label', 'zone=asia']);
  await waitFor('asia placed on as1', async () => (await client.get('asia')).worker === 'as1', 30_000);
  await assert.rejects(client.cordon('nope'), (e: { code?: string }) => e.code === 'NOT_FOUND');
  await assert.rejects(client.drain('nope'), (e: { code?: string }) => e.code === 'NOT_FOUND');
});
