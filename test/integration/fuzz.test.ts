// The fuzzer's quick run (fuzz/): a fixed seed, a few hundred generated cases
// against every subject of a real cluster (3 masters, 2 workers), each
// answered with a typed error or a correct answer (or published, where
// nothing answers by design), no process crashing or logging an unhandled
// rejection, and the chaos checker's invariants holding afterwards.
// `npm run fuzz` is the long run with a random seed.
//
// Before it, the inputs the fuzzer found bugs with, each as a regression.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { cluster, rawConnect } from '../harness.js';
import type { LocalCluster } from '#devcluster/cluster.js';
import { ClientSubject, Header, WorkerSubject, subjects } from '#protocol/subjects.js';
import { Fuzzer, fuzz } from '#fuzz/judge.js';
import { report } from '#fuzz/run.js';

/** The quick run's seed and size; `npm run fuzz` takes FUZZ_SEED and FUZZ_RUNS. */
const SEED = 20260601;
const RUNS = 300;

// One cluster for the file, stopped after its last test.
const c: LocalCluster = await cluster({ masters: 3, workers: 2, ttlSeconds: 2 });
await c.ready(2, 60_000);
const nc: NatsConnection = await rawConnect(c.natsUrl);

type Reply = { ok: boolean; error?: { code: string; message: string }; [k: string]: unknown };

async function ask(subject: string, body: string, hdrs: Array<[string, string]> = []): Promise<Reply> {
  const h = natsHeaders();
  for (const [k, v] of hdrs) h.append(k, v);
  const m = await nc.request(subject, new TextEncoder().encode(body), { timeout: 8000, headers: h });
  return JSON.parse(new TextDecoder().decode(m.data)) as Reply;
}

const code = (r: Reply): string => (r.ok ? 'ok' : (r.error?.code ?? '?'));

test('fuzz regressions: inputs that broke the cluster are refused with BAD_REQUEST and break nothing', async () => {
  const client = await c.client();
  const before = await client.status();

  // Gaffer-Origin names the master the leader acks on master.ack.<origin>: "a b c" (or 5000 'o's) made
  // that subject unparsable and nats-server dropped the leader's connection.
  for (const origin of ['a b c', 'o'.repeat(5000), 'a.b', '*']) {
    for (const subject of [ClientSubject.get, subjects.leader(before.leader)]) {
      const hdrs: Array<[string, string]> = [[Header.origin, origin]];
      if (subject !== ClientSubject.get) hdrs.push([Header.subject, ClientSubject.get]);
      assert.equal(code(await ask(subject, '{"name":"x"}', hdrs)), 'BAD_REQUEST', `Gaffer-Origin ${origin.slice(0, 20)} on ${subject}`);
    }
  }

  // A "__proto__" key in JSON was stored as msgpack no decoder reads: the worker never ran the resource,
  // and after a failover the acknowledged resource was gone.
  assert.equal(code(await ask(ClientSubject.add, '{"name":"proto1","spec":{"__proto__":{"x":1}}}')), 'BAD_REQUEST');
  assert.equal(code(await ask(ClientSubject.add, '{"name":"proto1","spec":{"a":{"\\u005f_proto__":1}}}')), 'BAD_REQUEST');

  // Task values nested deeper than the msgpack encoder goes (from the owning worker) made every
  // leader batch that touched the resource throw: nothing was answered until it was deleted.
  await client.add('deep1');
  const f = await Fuzzer.start(c);
  let a: (typeof f.live.assigned)[number] | undefined;
  for (let i = 0; i < 50 && !(a = f.live.assigned.find((x) => x.name === 'deep1')); i++) {
    await new Promise((r) => setTimeout(r, 100));
    await f.refresh();
  }
  assert.ok(a, 'deep1 is assigned');
  const deep = '['.repeat(150) + '1' + ']'.repeat(150);
  const own = (rep: string): string => `{"worker":"${a!.worker}","epoch":"${a!.epoch}","reports":[{"name":"deep1","id":"${a!.id}","attempt":${a!.attempt},${rep}}]}`;
  for (const rep of [`"type":"checkpoint","seq":1,"state":${deep}`, `"type":"progress","progress":${deep}`, `"type":"completed","result":${deep}`]) {
    assert.equal(code(await ask(WorkerSubject.report, own(rep))), 'BAD_REQUEST', rep.slice(0, 30));
  }
  // A failure's error that String() cannot convert was an INTERNAL error.
  assert.equal(code(await ask(WorkerSubject.report, own('"type":"failed","error":{"toString":1}'))), 'BAD_REQUEST');
  const progress = await ask(WorkerSubject.report, own(`"type":"progress","progress":${'['.repeat(64)}1${']'.repeat(64)}`));
  assert.deepEqual(progress.results, [{ ok: true }], 'a value 64 deep is still taken');
  assert.equal((await client.get('deep1')).name, 'deep1');
  await client.delete('deep1');
  await f.close();

  const after = await client.status();
  assert.equal(after.leader, before.leader);
  assert.equal(after.term, before.term, 'no failover');
  for (const id of c.masters.keys()) {
    const log = readFileSync(join(c.dir, `${id}.log`), 'utf8');
    assert.ok(!/"event":"disconnect"/.test(log), `${id} kept its NATS connection`);
    assert.ok(!/"level":50/.test(log), `${id} logged no error`);
  }
});

test(`fuzz: ${RUNS} generated cases (seed ${SEED}) get typed answers, crash nothing, and leave the cluster consistent`, async (t) => {
  const s = await fuzz(c, { seed: SEED, runs: RUNS, maxMs: 90_000, convergeMs: 20_000 });
  for (const line of report(s).split('\n')) t.diagnostic(line);
  assert.deepEqual(
    s.failures.map((x) => `#${x.caseNo} ${x.target} ${x.kind}: ${x.detail.slice(0, 300)}${x.sent ? ` ${JSON.stringify(x.sent).slice(0, 600)}` : ''}`),
    [],
  );
  assert.equal(s.cases, RUNS);
  // Every kind of target was exercised.
  assert.ok(Object.keys(s.byTarget).length >= 14, `targets: ${Object.keys(s.byTarget).join(', ')}`);
});
