// Fault tolerance against real processes: every acknowledged add is kept and
// runs on exactly one live worker, every acknowledged delete stays deleted,
// and no resource runs on two workers at once, through pauses, crashes, cut
// connections, broker and store restarts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cluster, converged, rawConnect, Recorder, runningEverywhere, waitFor } from '../harness.js';
import { headers as natsHeaders } from 'nats';
import { Proxy } from '../proxy.js';
import { ErrorCode, GafferError } from '#protocol/errors.js';
import { GafferClient } from '#client/client.js';
import { EtcdStore } from '#platform/etcd/store.js';
import { keys, parseKey } from '#protocol/keys.js';
import { packed } from '#protocol/codec.js';
import type { LocalCluster } from '#devcluster/cluster.js';
import type { AddResult } from '#protocol/messages.js';

async function store(c: LocalCluster): Promise<EtcdStore> {
  return EtcdStore.connect(c.etcdEndpoints.split(','), { timeoutMs: 3000 });
}

/** leaderTerm is the create revision of the lowest election key: the fencing token of the leader. */
async function leaderTerm(s: EtcdStore): Promise<number> {
  const snap = await s.range(keys.electionPrefix);
  return Math.min(...snap.kvs.map((kv) => kv.createRevision));
}

/** noOrphans checks etcd directly: assignment keys are exactly the placed resources. */
async function assertNoOrphans(c: LocalCluster): Promise<void> {
  const s = await store(c);
  try {
    const res = await s.range(keys.resourcesPrefix);
    const rev = res.revision;
    const asg = await s.range(keys.assignmentsPrefix, rev);
    const placed = new Set<string>();
    for (const kv of res.kvs) {
      const r = packed.decode(kv.value) as { name: string; worker: string | null };
      if (r.worker) placed.add(`${r.worker}/${r.name}`);
    }
    const assigned = new Set(asg.kvs.map((kv) => { const k = parseKey.assignment(kv.key)!; return `${k.workerId}/${k.name}`; }));
    assert.deepEqual([...assigned].sort(), [...placed].sort(), 'assignment keys match placed resources');
  } finally {
    s.close();
  }
}

/** starts/stops from events, for overlap checks: per resource id, each worker's run intervals. */
type TaskEvent = { name: string; id: string; worker: string; at: string };

function assertNoOverlap(started: TaskEvent[], stopped: TaskEvent[], names: string[]): void {
  for (const name of names) {
    const runs = started
      .filter((s) => s.name === name)
      .map((s) => {
        const end = stopped.find((e) => e.name === name && e.worker === s.worker && e.id === s.id && Date.parse(e.at) >= Date.parse(s.at));
        return { worker: s.worker, from: Date.parse(s.at), to: end ? Date.parse(end.at) : Infinity };
      });
    for (const a of runs)
      for (const b of runs)
        if (a !== b && a.worker !== b.worker) {
          assert.ok(a.to <= b.from || b.to <= a.from, `${name} ran on ${a.worker} and ${b.worker} at once: ${JSON.stringify([a, b])}`);
        }
  }
}

test('stale leader: paused past its TTL, then resumed, it cannot write and answers nothing wrong', async () => {
  const c = await cluster({ masters: 3, workers: 2, ttlSeconds: 2 });
  await c.ready(2);
  const client = await GafferClient.connect(c.natsUrl, { timeoutMs: 20000 });
  t_close(client);
  const s = await store(c);
  t_close(s);
  const oldTerm = await leaderTerm(s);
  const old = (await client.status()).leader;
  c.masters.get(old)!.pause();
  let resumed = false;
  try {
    // Requests while it is paused: a third of them sit in the paused leader's socket.
    const pending: Array<Promise<AddResult>> = [];
    for (let i = 0; i < 30; i++) pending.push(client.add(`stale-${i % 10}`));
    const status = await waitFor('a new leader', async () => {
      const st = await client.call<{ leader: string }>('cluster.status', {}, 1000).catch(() => undefined);
      return st && st.leader !== old ? st : undefined;
    }, 20000);
    const newTerm = await leaderTerm(s);
    assert.ok(newTerm > oldTerm);
    c.masters.get(old)!.resume();
    resumed = true;
    const results = await Promise.all(pending);
    for (let n = 0; n < 10; n++) {
      const mine = results.filter((r) => r.resource.name === `stale-${n}`);
      assert.equal(new Set(mine.map((r) => r.resource.id)).size, 1, `stale-${n}: one id in every answer`);
      assert.equal(mine.filter((r) => r.created).length, 1, `stale-${n}: created exactly once`);
    }
    // Audit etcd: nothing written after the new term began carries the old term.
    await converged(c);
    for (const prefix of [keys.resourcesPrefix, keys.assignmentsPrefix]) {
      for (const kv of (await s.range(prefix)).kvs) {
        const term = (packed.decode(kv.value) as { term?: number }).term;
        if (kv.modRevision > newTerm) assert.notEqual(term, oldTerm, `${kv.key} was written by the stale leader`);
      }
    }
    assert.equal(status.leader !== old, true);
    // The old leader now forwards like any follower.
    const after = await client.add('after-stale');
    assert.equal(after.created, true);
  } finally {
    if (!resumed) c.masters.get(old)!.resume();
  }
});

test('self-fencing: a worker cut off from etcd stops its tasks before they start elsewhere', async () => {
  const c = await cluster({ masters: 1, workers: 0, ttlSeconds: 2 });
  const proxy = await Proxy.start(c.etcdEndpoints.split(',')[0]!);
  c.startWorker('cut', ['--etcd', proxy.url]);
  await c.ready(1);
  const client = await c.client();
  const names = Array.from({ length: 6 }, (_, i) => `fence-${i}`);
  for (const n of names) await client.add(n);
  await converged(c);
  c.startWorker('spare');
  await c.ready(2);
  const started = await Recorder.start<TaskEvent>(c.natsUrl, 'events.task.started');
  const stopped = await Recorder.start<TaskEvent>(c.natsUrl, 'events.task.stopped');
  await proxy.cut();
  await waitFor('all to run on spare', async () => {
    const running = await runningEverywhere(c);
    return names.every((n) => JSON.stringify(running.get(n)) === '["spare"]');
  }, 20000);
  for (const n of names) {
    const stop = stopped.items.find((e) => e.data.name === n && e.data.worker === 'cut');
    const start = started.items.find((e) => e.data.name === n && e.data.worker === 'spare');
    assert.ok(stop, `${n} stopped on the cut-off worker`);
    assert.ok(start, `${n} started on spare`);
    assert.ok(Date.parse(stop.data.at) <= Date.parse(start.data.at), `${n} stopped on cut (${stop.data.at}) before it started on spare (${start.data.at})`);
  }
  // Back in touch, the worker re-registers with a new lease and takes new work, not the old.
  await proxy.restore();
  await waitFor('cut to rejoin', async () => (await client.status()).workers.some((w) => w.id === 'cut'), 20000);
  await converged(c);
  assertNoOverlap(started.items.map((i) => i.data), stopped.items.map((i) => i.data), names);
});

test('a worker cut off from NATS only is revoked fast, yet stops its tasks before they start elsewhere', async () => {
  const c = await cluster({ masters: 1, workers: 0, ttlSeconds: 2 });
  const proxy = await Proxy.start(c.natsUrl.replace('nats://', 'http://'));
  c.startWorker('islanded', ['--nats', proxy.url.replace('http://', 'nats://')]);
  await c.ready(1);
  const client = await c.client();
  const names = Array.from({ length: 6 }, (_, i) => `island-${i}`);
  for (const n of names) await client.add(n);
  await converged(c);
  c.startWorker('mainland');
  await c.ready(2);
  const started = await Recorder.start<TaskEvent & { endedAt?: string }>(c.natsUrl, 'events.task.started');
  const lost = await Recorder.start<{ worker: string }>(c.natsUrl, 'events.worker.lost');
  await proxy.cut();
  await waitFor('the leader to declare it lost', async () => lost.items.find((e) => e.data.worker === 'islanded'), 20000);
  await waitFor('all to run on mainland', async () =>
    names.every((n) => started.items.some((e) => e.data.name === n && e.data.worker === 'mainland')),
  );
  // Its events cannot reach us while it is cut off (core NATS keeps nothing): read its own log.
  const stops = await waitFor('its task stops in its log', async () => {
    const lines = readFileSync(join(c.dir, 'islanded.log'), 'utf8').split('\n').filter((l) => l.includes('"task stopped"'));
    const byName = new Map(lines.map((l) => JSON.parse(l) as { name: string; at: number }).map((e) => [e.name, e.at]));
    return names.every((n) => byName.has(n)) ? byName : undefined;
  });
  for (const n of names) {
    const start = started.items.find((e) => e.data.name === n && e.data.worker === 'mainland')!;
    assert.ok(
      stops.get(n)! <= Date.parse(start.data.at),
      `${n} ended on the cut-off worker (${new Date(stops.get(n)!).toISOString()}) before it started on mainland (${start.data.at})`,
    );
  }
  await proxy.restore();
  await waitFor('islanded to rejoin', async () => (await client.status()).workers.some((w) => w.id === 'islanded'), 20000);
  await converged(c);
});

test('a worker paused past its TTL runs nothing it lost when it resumes', async () => {
  const c = await cluster({ masters: 1, workers: 2, ttlSeconds: 2 });
  await c.ready(2);
  const client = await c.client();
  for (let i = 0; i < 6; i++) await client.add(`pause-${i}`);
  const list = await converged(c);
  const victim = list[0]!.worker!;
  const theirs = list.filter((r) => r.worker === victim).map((r) => r.name);
  c.workers.get(victim)!.pause();
  try {
    await waitFor('its resources to move', async () => {
      const l = await client.list();
      return theirs.every((n) => l.find((r) => r.name === n)?.worker !== victim);
    }, 20000);
  } finally {
    c.workers.get(victim)!.resume();
  }
  await waitFor(`${victim} to answer again`, async () => (await client.workerStatus(victim).catch(() => undefined)) !== undefined);
  const running = await runningEverywhere(c);
  for (const n of theirs) assert.notEqual(running.get(n)?.includes(victim), true, `${n} must not run on ${victim} after resume`);
  await converged(c);
});

test('nats-server restart: everyone reconnects and resyncs; adds and deletes work after', async () => {
  const c = await cluster({ masters: 2, workers: 2, ttlSeconds: 2 });
  await c.ready(2);
  const client = await c.client();
  for (let i = 0; i < 4; i++) await client.add(`nr-${i}`);
  await converged(c);
  await c.nats!.restart();
  await c.ready(2);
  await client.delete('nr-0');
  await client.add('nr-new');
  const list = await converged(c);
  assert.deepEqual(list.map((r) => r.name).sort(), ['nr-1', 'nr-2', 'nr-3', 'nr-new']);
});

test('etcd: one member of three down keeps working; quorum lost answers UNAVAILABLE fast; service resumes', async () => {
  const c = await cluster({ masters: 2, workers: 2, ttlSeconds: 2, etcdMembers: 3 });
  await c.ready(2);
  const client = await GafferClient.connect(c.natsUrl, { timeoutMs: 8000 });
  t_close(client);
  await client.add('q-0');
  const [a, b] = c.etcd!.members;
  await a!.child.kill();
  await waitFor('adds to work with one member down', async () => (await client.add('q-1').catch(() => undefined))?.resource);
  await b!.child.kill();
  const t0 = performance.now();
  const err = await waitFor('a quorum-loss error', async () => {
    try {
      await client.add(`q-lost-${Date.now()}`);
      return undefined;
    } catch (e) {
      return e as GafferError;
    }
  }, 30000);
  t_diag(`quorum lost: ${err.code} after ${(performance.now() - t0).toFixed(0)} ms`);
  assert.equal(err.code, ErrorCode.UNAVAILABLE, `${err.code}: ${err.message}`);
  a!.child.start();
  b!.child.start();
  await waitFor('service to resume', async () => (await client.add('q-2').catch(() => undefined))?.resource, 40000);
  await converged(c, 30000);
});

test('store watch: a compacted revision makes the watch tell its owner to re-read', async () => {
  const c = await cluster({ masters: 0, workers: 0 });
  const s = await store(c);
  t_close(s);
  for (let i = 0; i < 5; i++) await s.txn(undefined, [{ put: 'gaffer/test/k', value: packed.encode(i) }]);
  const head = (await s.range('gaffer/test/')).revision;
  await s.compact(head);
  const reset = await new Promise<Error>((resolve) => {
    s.watch('gaffer/test/', 1, () => assert.fail('no event may arrive from a compacted revision'), resolve);
  });
  assert.ok(reset instanceof Error);
  // What the owner then does: re-read, and watch from the snapshot on.
  const snap = await s.range('gaffer/test/');
  const seen = new Promise<number>((resolve) => {
    const w = s.watch('gaffer/test/', snap.revision + 1, (events) => {
      void w.close();
      resolve(packed.decode(events[0]!.kv.value) as number);
    }, () => assert.fail('the fresh watch must not reset'));
  });
  await s.txn(undefined, [{ put: 'gaffer/test/k', value: packed.encode(99) }]);
  assert.equal(await seen, 99);
});

test('leader SIGKILL with requests in flight: every client call succeeds', async () => {
  const c = await cluster({ masters: 3, workers: 2, ttlSeconds: 2 });
  await c.ready(2);
  const client = await GafferClient.connect(c.natsUrl, { timeoutMs: 20000 });
  t_close(client);
  const leader = (await client.status()).leader;
  const names = Array.from({ length: 120 }, (_, i) => `inflight-${i}`);
  let killed = false;
  const results = await mapLimit(names, 16, async (n, i) => {
    if (i === 30 && !killed) {
      killed = true;
      await c.masters.get(leader)!.kill();
    }
    return client.add(n);
  });
  assert.equal(results.length, names.length);
  assert.ok(results.every((r) => r.created), 'every add created once');
  const list = await converged(c);
  for (const n of names) assert.ok(list.some((r) => r.name === n), `${n} kept`);
});

test('SIGTERM: leader hands over at once with requests in flight; a worker deregisters and its work moves', async () => {
  const c = await cluster({ masters: 3, workers: 2, ttlSeconds: 2 });
  await c.ready(2);
  const client = await GafferClient.connect(c.natsUrl, { timeoutMs: 20000 });
  t_close(client);
  const leader = (await client.status()).leader;
  const elected = await Recorder.start<{ leader: string }>(c.natsUrl, 'events.leader.elected');
  const names = Array.from({ length: 80 }, (_, i) => `term-${i}`);
  let stopped: Promise<void> | undefined;
  const results = await mapLimit(names, 16, async (n, i) => {
    if (i === 20) stopped = c.masters.get(leader)!.stop();
    return client.add(n);
  });
  await stopped;
  assert.ok(results.every((r) => r.created));
  await waitFor('a new leader announced', async () => elected.items.find((e) => e.data.leader !== leader));
  await converged(c);

  const lost = await Recorder.start<{ worker: string }>(c.natsUrl, 'events.worker.lost');
  const victim = (await client.list()).find((r) => r.worker)!.worker!;
  await c.workers.get(victim)!.stop();
  await waitFor('the worker to be reported lost', async () => lost.items.find((e) => e.data.worker === victim));
  const list = await converged(c);
  assert.ok(list.every((r) => r.worker !== victim));
});

test('racing adds and deletes end in a serial outcome with no orphan keys and no stray tasks', async () => {
  const c = await cluster({ masters: 3, workers: 2, ttlSeconds: 2 });
  await c.ready(2);
  const client = await c.client();
  const names = Array.from({ length: 15 }, (_, i) => `race-${i}`);
  await Promise.all(
    names.flatMap((n) => [
      client.add(n),
      client.add(n),
      client.add(n),
      client.delete(n).catch((e: GafferError) => (e.code === ErrorCode.NOT_FOUND ? undefined : Promise.reject(e))),
    ]),
  );
  const list = await converged(c);
  const running = await runningEverywhere(c);
  for (const n of names) {
    const r = list.find((x) => x.name === n);
    if (r) assert.deepEqual(running.get(n), [r.worker]);
    else assert.equal(running.has(n), false, `${n} deleted but still running`);
  }
  await assertNoOrphans(c);
});

// --- helpers ---------------------------------------------------------------

import { after } from 'node:test';
function t_close(x: { close(): unknown }): void {
  after(() => x.close());
}
function t_diag(msg: string): void {
  process.stdout.write(`# ${msg}\n`);
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

test('a write re-sent with the same request id after a leader change gets its first outcome', async () => {
  const c = await cluster({ masters: 2, workers: 1, ttlSeconds: 2 });
  await c.ready(1);
  const nc = await rawConnect(c.natsUrl);
  const send = async (subject: string, body: object, id: string) => {
    const h = natsHeaders();
    h.set('Gaffer-Request-Id', id);
    const m = await nc.request(subject, packed.encode(body), { timeout: 10000, headers: (h.set('Content-Type', 'application/msgpack'), h) });
    return packed.decode(m.data) as { ok: boolean; created?: boolean; resource?: { id: string }; error?: { code: string } };
  };
  const added = await send('resource.add', { name: 'once' }, 'req-add-1');
  await send('resource.add', { name: 'gone' }, 'req-add-2');
  const deleted = await send('resource.delete', { name: 'gone' }, 'req-del-1');
  assert.equal(added.created, true);
  assert.equal(deleted.ok, true);
  const client = await c.client();
  const old = (await client.status()).leader;
  await c.masters.get(old)!.stop();
  await waitFor('a new leader', async () => ((await client.status().catch(() => undefined))?.leader ?? old) !== old);
  // The new leader knows these ids from etcd, not from memory.
  const againAdd = await send('resource.add', { name: 'once' }, 'req-add-1');
  assert.equal(againAdd.created, true, 'the repeat reports the first outcome: created');
  assert.equal(againAdd.resource?.id, added.resource?.id);
  const againDel = await send('resource.delete', { name: 'gone' }, 'req-del-1');
  assert.equal(againDel.ok, true, `the repeated delete reports success, not ${againDel.error?.code}`);
  const fresh = await send('resource.add', { name: 'once' }, 'req-add-3');
  assert.equal(fresh.created, false, 'a new id sees the resource as it is');
});
