// The whole loop against real nats-server, etcd and gaffer processes: adds
// through any master, idempotence under concurrency, deletes, worker and
// leader loss, worker restarts, and typed errors for bad input.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { headers as natsHeaders } from 'nats';
import { encode as mpEncode, decode as mpDecode } from '@msgpack/msgpack';
import { cluster, converged, rawConnect, Recorder, runningEverywhere, waitFor } from '../harness.js';
import { ErrorCode, GafferError } from '#protocol/errors.js';
import { json } from '#protocol/codec.js';

test('core control plane', async (t) => {
  const c = await cluster({ masters: 3, workers: 3, ttlSeconds: 2 });
  const status = await c.ready(3);
  const client = await c.client();
  assert.equal(status.masters.length, 3);
  assert.ok(status.masters.includes(status.leader));

  await t.test('adds go through followers and are answered', async () => {
    for (let i = 0; i < 30; i++) {
      const r = await client.add(`follow-${i}`);
      assert.equal(r.created, true);
      assert.ok(r.resource.worker, 'placed on a worker');
      assert.ok(r.resource.revision > 0);
    }
    // The services API counts requests per master: followers must have served some.
    const nc = await rawConnect(c.natsUrl);
    const served = new Map<string, number>();
    for await (const s of await nc.services.client().stats('gaffer')) {
      const id = (s.metadata as Record<string, string>)?.id ?? s.id;
      served.set(id, s.endpoints?.find((e) => e.subject === 'resource.add')?.num_requests ?? 0);
    }
    const leader = (await client.status()).leader;
    const viaFollowers = [...served].filter(([id]) => id !== leader).reduce((n, [, v]) => n + v, 0);
    assert.ok(viaFollowers > 0, `followers served ${viaFollowers} of 30 adds (${JSON.stringify([...served])})`);
    await converged(c);
  });

  await t.test('100 concurrent adds of 10 names make exactly 10 resources, each on one worker', async () => {
    const names = Array.from({ length: 10 }, (_, i) => `race-${i}`);
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => client.add(names[i % 10]!)));
    const created = results.filter((r) => r.created);
    assert.equal(created.length, 10, 'each name created exactly once');
    for (const name of names) {
      const ids = new Set(results.filter((r) => r.resource.name === name).map((r) => r.resource.id));
      assert.equal(ids.size, 1, `${name} has one id across all answers`);
    }
    const list = await converged(c);
    assert.equal(list.filter((r) => r.name.startsWith('race-')).length, 10);
    const running = await runningEverywhere(c);
    for (const name of names) assert.equal(running.get(name)?.length, 1, `${name} runs on exactly one worker`);
  });

  await t.test('placement spreads load evenly', async () => {
    const s = await client.status();
    const loads = s.workers.map((w) => w.resources);
    assert.ok(Math.max(...loads) - Math.min(...loads) <= 1, `loads ${loads}`);
  });

  await t.test('delete stops the task and the name is gone', async () => {
    const events = await Recorder.start<{ name: string }>(c.natsUrl, 'events.task.stopped');
    await client.add('doomed');
    await converged(c);
    const gone = await client.delete('doomed');
    assert.equal(gone.name, 'doomed');
    await waitFor('the doomed task to stop', async () => events.items.some((e) => e.data.name === 'doomed'));
    const running = await runningEverywhere(c);
    assert.equal(running.has('doomed'), false);
    await assert.rejects(client.get('doomed'), (e: GafferError) => e.code === ErrorCode.NOT_FOUND);
    await assert.rejects(client.delete('doomed'), (e: GafferError) => e.code === ErrorCode.NOT_FOUND);
  });

  await t.test('assign events mirror placements on worker.<id>.assign', async () => {
    const rec = await Recorder.start<{ type: string; resource: { name: string; worker: string }; revision: number }>(
      c.natsUrl,
      'worker.*.assign',
    );
    const r = await client.add('mirrored');
    await waitFor('a put event for mirrored', async () =>
      rec.items.find((e) => e.data.type === 'put' && e.data.resource.name === 'mirrored'),
    );
    const put = rec.items.find((e) => e.data.resource.name === 'mirrored')!;
    assert.equal(put.subject, `worker.${r.resource.worker}.assign`);
    assert.equal(put.data.revision, r.resource.revision);
    await client.delete('mirrored');
    await waitFor('a delete event for mirrored', async () =>
      rec.items.find((e) => e.data.type === 'delete' && e.data.resource.name === 'mirrored'),
    );
  });

  await t.test('bad requests get BAD_REQUEST, in the encoding they came in', async () => {
    const nc = await rawConnect(c.natsUrl);
    const bad: Array<[string, string]> = [
      ['resource.add', 'not json'],
      ['resource.add', '{}'],
      ['resource.add', '{"name":42}'],
      ['resource.add', '{"name":"../x"}'],
      ['resource.add', '{"name":"a b"}'],
      ['resource.add', '{"name":"books.*"}'],
      ['resource.add', '{"name":">"}'],
      ['resource.add', '{"name":"ok","spec":[1]}'],
      ['resource.add', '{"name":"ok","spec":{"kind":"no.pe"}}'],
      ['resource.add', '{"name":"ok","spec":{"restart":{"attempts":0}}}'],
      ['resource.add', '{"name":"ok","extra":1}'],
      ['resource.add', '[1,2]'],
      ['resource.delete', '{"name":""}'],
      ['resource.get', 'null'],
      ['resource.list', '{"x":1}'],
      ['resource.add', JSON.stringify({ name: 'big', spec: { s: 'x'.repeat(300 * 1024) } })],
    ];
    for (const [subject, body] of bad) {
      const m = await nc.request(subject, new TextEncoder().encode(body), { timeout: 5000 });
      const reply = json.decode(m.data) as { ok: boolean; error: { code: string; message: string } };
      assert.equal(reply.ok, false, `${subject} ${body.slice(0, 40)}`);
      assert.equal(reply.error.code, 'BAD_REQUEST', `${subject} ${body.slice(0, 40)}: ${reply.error.message}`);
      assert.ok(reply.error.message.length > 0);
    }
    const h = natsHeaders();
    h.set('Content-Type', 'application/msgpack');
    const ok = await nc.request('resource.add', mpEncode({ name: 'packed' }), { timeout: 5000, headers: h });
    assert.equal(ok.headers?.get('Content-Type'), 'application/msgpack');
    assert.equal((mpDecode(ok.data) as { ok: boolean }).ok, true);
    const badPacked = await nc.request('resource.add', new Uint8Array([0xc1]), { timeout: 5000, headers: h });
    assert.equal((mpDecode(badPacked.data) as { error: { code: string } }).error.code, 'BAD_REQUEST');
    // `nats micro stats gaffer` counts them: 13 bad resource.add requests were answered with errors.
    let addErrors = 0;
    for await (const st of await nc.services.client().stats('gaffer')) {
      addErrors += st.endpoints?.find((e) => e.subject === 'resource.add')?.num_errors ?? 0;
    }
    assert.ok(addErrors >= 12, `num_errors for resource.add across masters: ${addErrors}`);
  });

  await t.test('worker SIGKILL: its resources run elsewhere', async () => {
    const before = await converged(c);
    const victim = before.find((r) => r.worker)!.worker!;
    const victims = before.filter((r) => r.worker === victim).map((r) => r.name);
    assert.ok(victims.length > 0);
    const t0 = performance.now();
    await c.workers.get(victim)!.kill();
    const after = await converged(c, 20000);
    t.diagnostic(`worker failover: ${victims.length} resources running elsewhere after ${(performance.now() - t0).toFixed(0)} ms`);
    for (const name of victims) {
      const r = after.find((x) => x.name === name);
      assert.ok(r && r.worker && r.worker !== victim, `${name} moved off ${victim}`);
    }
    // Bring it back for the tests below; it rejoins empty and takes new work.
    c.startWorker(victim);
    await c.ready(3);
  });

  await t.test('worker restart with the same id resyncs and starts nothing twice', async () => {
    const list = await converged(c);
    const id = list.find((r) => r.worker)!.worker!;
    const mine = list.filter((r) => r.worker === id).map((r) => r.name).sort();
    const starts = await Recorder.start<{ name: string; worker: string }>(c.natsUrl, 'events.task.started');
    // SIGKILL and restart at once. Depending on how fast the leader notices,
    // the resources either stay (the new incarnation resyncs and runs them)
    // or move (and the new incarnation must not run them): either way each
    // runs exactly once, and nothing starts twice.
    await c.workers.get(id)!.kill();
    c.startWorker(id);
    await c.ready(3);
    const after = await converged(c);
    const byName = new Map<string, number>();
    for (const s of starts.items) byName.set(`${s.data.worker}/${s.data.name}`, (byName.get(`${s.data.worker}/${s.data.name}`) ?? 0) + 1);
    for (const [k, n] of byName) assert.equal(n, 1, `${k} started ${n} times`);
    for (const name of mine) assert.ok(after.some((r) => r.name === name), `${name} kept`);
  });

  await t.test('a worker down past its TTL does not start what moved away', async () => {
    const list = await converged(c);
    const id = list.find((r) => r.worker)!.worker!;
    const mine = list.filter((r) => r.worker === id).map((r) => r.name);
    await c.workers.get(id)!.kill();
    await waitFor('its resources to move', async () => {
      const l = await client.list();
      return mine.every((n) => l.find((r) => r.name === n)?.worker !== id);
    });
    const events = await Recorder.start<{ kind: string; name: string; worker?: string; to?: string; reason?: string }>(c.natsUrl, 'events.>');
    c.startWorker(id);
    await c.ready(3);
    await converged(c);
    // Rebalance may legitimately move some back to the empty worker (its
    // event and the start come from different processes, so in either order).
    const seen = events.items.map((e) => e.data);
    const movedBack = new Set(seen.filter((m) => m.kind === 'resource.moved' && m.to === id && m.reason === 'rebalance').map((m) => m.name));
    const stale = seen.filter((e) => e.kind === 'task.started' && e.worker === id && mine.includes(e.name) && !movedBack.has(e.name));
    assert.deepEqual(stale, [], 'moved resources were not started on the returning worker, unless moved back to it');
  });

  await t.test('leader SIGKILL: a new leader serves and every acknowledged resource is kept', async () => {
    const before = await converged(c);
    const old = (await client.status()).leader;
    const t0 = performance.now();
    await c.masters.get(old)!.kill();
    const s = await waitFor('a new leader', async () => {
      const st = await client.call<{ leader: string }>('cluster.status', {}, 1000).catch(() => undefined);
      return st && st.leader !== old ? st : undefined;
    });
    const r = await client.add('after-failover');
    t.diagnostic(`leader failover: ${s.leader} serving adds ${(performance.now() - t0).toFixed(0)} ms after SIGKILL of ${old}`);
    assert.equal(r.created, true);
    const after = await converged(c);
    for (const b of before) {
      const a = after.find((x) => x.name === b.name);
      assert.ok(a, `${b.name} survived`);
      assert.equal(a.id, b.id);
    }
    c.startMaster(old);
  });
});

test('no worker yet: adds stay pending and are placed when one appears', async () => {
  const c = await cluster({ masters: 1, workers: 0, ttlSeconds: 2 });
  await c.ready(0);
  const client = await c.client();
  const r = await client.add('early');
  assert.equal(r.resource.worker, null);
  assert.equal(r.created, true);
  c.startWorker('late');
  await waitFor('early to be placed on late', async () => (await client.get('early')).worker === 'late');
  await converged(c);
});

test('no leader: requests are parked, answered NO_LEADER, and service resumes on its own', async () => {
  const c = await cluster({ masters: 1, workers: 0, ttlSeconds: 2 });
  await c.ready(0);
  const client = await c.client();
  await client.add('before-pause');
  // With etcd paused the only master cannot keep its lease: it stops leading and holds requests.
  const etcd = c.etcd!.members[0]!.child;
  etcd.pause();
  try {
    const err = await waitFor('a NO_LEADER answer', async () => {
      try {
        // 20 s (10 s an attempt): a leader whose etcd stopped may be reloading
        // when the request comes (its workers watch broke), and each read of
        // the reload waits out its 2 s deadline before the typed answer.
        await client.call('resource.get', { name: 'before-pause' }, 20_000);
        return undefined;
      } catch (e) {
        return e as GafferError;
      }
    }, 30000);
    assert.ok(err.code === ErrorCode.NO_LEADER || err.code === ErrorCode.UNAVAILABLE, `got ${err.code}: ${err.message}`);
  } finally {
    etcd.resume();
  }
  await waitFor('service to resume', async () => (await client.get('before-pause').catch(() => undefined))?.name === 'before-pause', 30000);
});

test('a process that cannot reach NATS or etcd says so in one line and exits non-zero', async () => {
  const { execFile } = await import('node:child_process');
  const { freePort } = await import('#devcluster/servers.js');
  const { CLI_PATH } = await import('#devcluster/cluster.js');
  const c = await cluster({ masters: 0, workers: 0 });
  const closed = await freePort();
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI_PATH, ...args], { timeout: 20000 }, (err, _out, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
    });
  const noNats = await run(['master', '--nats', `nats://127.0.0.1:${closed}`, '--etcd', c.etcdEndpoints]);
  assert.notEqual(noNats.code, 0);
  assert.match(noNats.stderr, /cannot reach NATS/);
  assert.equal(noNats.stderr.trim().split('\n').length, 1, noNats.stderr);
  const noEtcd = await run(['worker', '--nats', c.natsUrl, '--etcd', `http://127.0.0.1:${closed}`]);
  assert.notEqual(noEtcd.code, 0);
  assert.match(noEtcd.stderr, /etcd/);
  assert.equal(noEtcd.stderr.trim().split('\n').length, 1, noEtcd.stderr);
  const badTtl = await run(['master', '--ttl', '1', '--nats', c.natsUrl, '--etcd', c.etcdEndpoints]);
  assert.equal(badTtl.code, 2);
  const badId = await run(['worker', '--id', 'a.b', '--nats', c.natsUrl, '--etcd', c.etcdEndpoints]);
  assert.equal(badId.code, 2);
});

test('--metrics-port serves Prometheus metrics from masters and workers', async () => {
  const { freePort } = await import('#devcluster/servers.js');
  const [mp, wp] = [await freePort(), await freePort()];
  const c = await cluster({ masters: 0, workers: 0, ttlSeconds: 2 });
  c.startMaster('m1', ['--metrics-port', String(mp)]);
  c.startWorker('w1', ['--metrics-port', String(wp)]);
  await c.ready(1);
  const client = await c.client();
  await client.add('measured');
  await converged(c);
  const scrape = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = await waitFor('the leader to report its commit', async () => {
    const text = await scrape(mp);
    return /gaffer_etcd_commit_duration_seconds_count\{[^}]*\} [1-9]/.test(text) ? text : undefined;
  });
  assert.match(m, /gaffer_requests_total\{[^}]*subject="resource.add"[^}]*code="OK"[^}]*\} 1/);
  assert.match(m, /gaffer_leader\{[^}]*\} 1/);
  assert.match(m, /gaffer_worker_resources\{[^}]*worker="w1"[^}]*\} 1/);
  const w = await scrape(wp);
  assert.match(w, /gaffer_running_tasks\{[^}]*\} 1/);
});
