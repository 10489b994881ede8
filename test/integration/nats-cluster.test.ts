// gaffer on a 3-node NATS cluster: masters and workers spread over the nodes
// (mN and wN start on node N), so client requests, forwards to
// master.leader.<id>, probes and assignments cross routes. Then the node the
// leader is connected to is SIGKILLed, and later a node that a worker with a
// running task is connected to: the processes there reconnect to the other
// nodes, requests keep being answered, workers keep their assignments, the
// task's results still reach the (3-replica) JetStream stream, and once the
// node is back the chaos checker finds nothing lost, resurrected, answered
// twice, orphaned or run twice. Every wait has a deadline; nothing sleeps.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Empty } from 'nats';
import { cluster, waitFor } from '../harness.js';
import { GafferClient } from '#client/client.js';
import { EtcdStore } from '#platform/etcd/store.js';
import { pingHeaders } from '#platform/nats/prober.js';
import { natsConnectionNames, natsHealthy } from '#devcluster/probe.js';
import type { LocalCluster } from '#devcluster/cluster.js';
import type { NatsServer } from '#devcluster/servers.js';
import type { Resource } from '#protocol/messages.js';
import { RESULTS_STREAM, subjects } from '#protocol/subjects.js';
import { Workload } from '#chaos/workload.js';
import { check, violationCount } from '#chaos/check.js';
import type { Death } from '#harness/faults.js';
import { waitRecovered } from '#harness/observe.js';
import { Rng } from '#harness/rng.js';
import { mismatches, snapshot } from '#harness/snapshot.js';

const EXAMPLES = fileURLToPath(new URL('../../../examples/kinds.mjs', import.meta.url));
/** Steps of each countdown task: one result each, 100 ms apart, so it runs through the fault. */
const STEPS = 60;

/** nodeOf is the node a gaffer process is connected to now (by its connection name), among the nodes that answer. */
async function nodeOf(c: LocalCluster, conn: string): Promise<NatsServer | undefined> {
  for (const n of c.natsCluster!.nodes) {
    if (!n.child.running) continue;
    if ((await natsConnectionNames(n.monitorUrl!))?.includes(conn)) return n;
  }
  return undefined;
}

/** connectedTo lists the gaffer process ids connected to a node. */
async function connectedTo(n: NatsServer): Promise<string[]> {
  const names = (await natsConnectionNames(n.monitorUrl!)) ?? [];
  return names.map((x) => /^gaffer-(?:master|worker)-(.+)$/.exec(x)?.[1]).filter((x): x is string => !!x).sort();
}

test('a 3-node NATS cluster: spread processes, a node killed under load, nothing lost', { timeout: 420_000 }, async (t) => {
  const c = await cluster({ masters: 3, workers: 0, natsNodes: 3, ttlSeconds: 2 });
  for (const id of ['w1', 'w2', 'w3']) c.startWorker(id, ['--tasks', EXAMPLES]);
  await c.ready(3, 90_000);
  t.diagnostic(`cluster in ${c.dir}`);
  const nodes = c.natsCluster!.nodes;
  const client = await GafferClient.connect(c.natsUrl, { timeoutMs: 20_000 });
  const store = await EtcdStore.connect(c.etcdEndpoints.split(','), { timeoutMs: 3000 });
  t.after(async () => {
    await client.close().catch(() => undefined);
    store.close();
  });
  const observed = { c, client, store, since: new Map<string, number>() };
  const countdowns: string[] = [];

  await t.test('each process starts on the node its id picks; the results stream keeps 3 copies', async () => {
    for (const [i, n] of nodes.entries()) {
      const want = [`m${i + 1}`, `w${i + 1}`];
      const on = await waitFor(`${want.join(', ')} on ${n.name}`, async () => {
        const ids = await connectedTo(n);
        return want.every((id) => ids.includes(id)) && ids;
      }, 30_000);
      assert.deepEqual(on, want);
    }
    const jsm = await client.nc.jetstreamManager({ checkAPI: false });
    const info = await waitFor('the results stream with 3 current replicas', async () => {
      const s = await jsm.streams.info(RESULTS_STREAM);
      const current = (s.cluster?.replicas ?? []).filter((r) => r.current).length;
      return s.config.num_replicas === 3 && !!s.cluster?.leader && current === 2 ? s : undefined;
    }, 60_000);
    t.diagnostic(`results stream leader ${info.cluster?.leader}`);
  });

  await t.test('adds through every node succeed (the master there forwards across routes to the leader)', async () => {
    for (const n of nodes) {
      // One URL only: NATS gives a queue-group request to a member on the same server first, so this reaches that node's master.
      const via = await GafferClient.connect(n.url, { timeoutMs: 20_000 });
      try {
        const r = await via.add(`via-${n.name}`);
        assert.equal(r.created, true);
        assert.equal((await via.get(`via-${n.name}`)).id, r.resource.id);
      } finally {
        await via.close();
      }
    }
    const names = (await client.list()).map((r) => r.name);
    for (const n of nodes) assert.ok(names.includes(`via-${n.name}`), `via-${n.name} listed`);
  });

  await t.test('probes reach masters and workers on other nodes', async () => {
    const leader = (await client.status()).leader;
    for (const n of nodes) {
      const via = await GafferClient.connect(n.url, { timeoutMs: 5000 });
      try {
        await via.nc.request(subjects.leader(leader), Empty, { timeout: 5000, headers: pingHeaders() });
        for (const w of ['w1', 'w2', 'w3']) await via.nc.request(subjects.workerStatus(w), Empty, { timeout: 5000, headers: pingHeaders() });
      } finally {
        await via.close();
      }
    }
  });

  // What the node deaths cost in leadership and worker moves: reported, not asserted (a loaded machine may legitimately lose a lease).
  const seen: string[] = [];
  const events = client.nc.subscribe(subjects.allEvents, {
    callback: (_err, m) => {
      if (m.subject === 'events.leader.elected' || m.subject === 'events.worker.lost') seen.push(`${m.subject.slice(7)} ${new TextDecoder().decode(m.data)}`);
    },
  });
  t.after(() => events.unsubscribe());

  const wl = new Workload(client, { names: 20, inflight: 3, clientTimeoutMs: 20_000, thinkMs: [20, 150], quarantineMs: 10_000 }, new Rng(20261202));
  wl.start();
  const deaths: Death[] = [];

  /**
   * killNode: a countdown runs, the node goes (SIGKILL), and with it down the
   * client keeps getting answers, every gaffer process is connected to one of
   * the other two, the state converges; then it comes back on the same ports
   * and store, the cluster recovers, and the countdown's results are all in
   * the stream, each once.
   */
  const killNode = async (pick: (leader: string, countdownWorker: string) => Promise<NatsServer>, k: number): Promise<void> => {
    const name = `countdown-${k}`;
    countdowns.push(name);
    // Through the workload, so the checker judges it with the rest.
    const added = await wl.add(name, { kind: 'countdown', from: STEPS, stepMs: 100 });
    assert.equal(added.result, 'ok', `${name} added: ${added.message ?? ''}`);
    const running = await waitFor(`${name} running`, async () => {
      const r = await client.get(name);
      return r.state === 'running' && r;
    }, 30_000);
    const leader = (await client.status()).leader;
    const node = await pick(leader, running.worker!);
    const cut = await connectedTo(node);
    t.diagnostic(`killing ${node.name}: [${cut.join(' ')}] connected, leader ${leader}, ${name} on ${running.worker}`);
    const killedAt = Date.now();
    await node.child.kill();

    await waitFor('5 client requests answered ok while the node is down', async () => wl.ops.filter((o) => o.start > killedAt && o.result === 'ok').length >= 5, 60_000);
    const others = nodes.filter((n) => n !== node);
    await waitFor(`${cut.join(', ')} reconnected to another node`, async () => {
      const ids = new Set((await Promise.all(others.map(connectedTo))).flat());
      return cut.every((id) => ids.has(id));
    }, 60_000);
    await waitFor('every resource running on exactly its worker, all workers live, with the node down', async () => {
      const st = await client.status();
      if (st.workers.length !== 3 || st.pending > 0) return false;
      const s = await snapshot(c, client);
      if (Object.values(s.running).some((x) => x === null)) return false;
      return mismatches(s, wl.dirty(s.at - 1500)).length === 0;
    }, 90_000);

    await node.start();
    const rcv = await waitRecovered(observed, (since) => wl.dirty(since), 1500, 120_000);
    assert.ok(rcv.ok, `recovered after ${node.name} came back: ${rcv.why}`);
    wl.markRecovered(rcv.at);
    assert.ok(await natsHealthy(node.monitorUrl!), `${node.name} healthy again`);

    const done: Resource = await waitFor(`${name} completed`, async () => {
      const r = await client.get(name);
      return (r.state === 'completed' || r.state === 'failed') && r;
    }, 120_000);
    assert.equal(done.state, 'completed', `${name}: ${done.error ?? ''}`);
    assert.equal(done.failures, 0, `${name}: no attempt failed (an emit rides over the stream's leader election)`);
    const jsm = await client.nc.jetstreamManager({ checkAPI: false });
    const subject = subjects.results(name);
    const info = await jsm.streams.info(RESULTS_STREAM, { subjects_filter: subject });
    assert.equal(info.state.subjects?.[subject], STEPS, `every step of ${name} stored exactly once`);
    t.diagnostic(`${node.name}: down ${Date.now() - killedAt} ms in all; results stream leader now ${info.cluster?.leader}; ${seen.length} leader elections or workers lost since the start${seen.length ? `: ${seen.join('; ').slice(0, 600)}` : ''}`);
  };

  await t.test('the node the leader is connected to is killed', async () => {
    await killNode(async (leader) => {
      const n = await waitFor(`the node ${leader} is on`, () => nodeOf(c, `gaffer-master-${leader}`), 10_000);
      return n;
    }, 1);
  });

  await t.test("a node a worker with a running task is connected to (and the leader is not) is killed", async () => {
    await killNode(async (leader, worker) => {
      const leaderNode = await waitFor(`the node ${leader} is on`, () => nodeOf(c, `gaffer-master-${leader}`), 10_000);
      const own = await waitFor(`the node ${worker} is on`, () => nodeOf(c, `gaffer-worker-${worker}`), 10_000);
      if (own !== leaderNode) return own;
      // The worker shares the leader's node: take a node where another worker is and the leader is not.
      for (const n of nodes) if (n !== leaderNode && (await connectedTo(n)).some((id) => id.startsWith('w'))) return n;
      throw new Error('no node holds a worker without the leader');
    }, 2);
  });

  await t.test('after the faults: the checker finds nothing lost, resurrected, answered twice, orphaned or run twice', async () => {
    await wl.stop();
    const rcv = await waitRecovered(observed, () => new Set(), 0, 120_000);
    assert.ok(rcv.ok, `converged: ${rcv.why}`);
    const final = await snapshot(c, client, 5000);
    const logs: Record<string, string> = {};
    for (const id of c.workers.keys()) {
      const f = join(c.dir, `${id}.log`);
      logs[id] = existsSync(f) ? readFileSync(f, 'utf8') : '';
    }
    // The via-* adds were made outside the workload (checked below); the checker judges what it recorded.
    const mine = (name: string): boolean => !name.startsWith('via-');
    const judged = {
      ...final,
      list: final.list.filter((x) => mine(x.name)),
      running: Object.fromEntries(Object.entries(final.running).map(([w, ts]) => [w, ts && ts.filter((x) => mine(x.name))])),
    };
    const r = check({ ops: wl.ops, logs, deaths, pauses: [], final: judged, endOfRun: Date.now() });
    const acked = wl.ops.filter((o) => o.result === 'ok' || o.result === 'not_found').length;
    const ambiguous = wl.ops.filter((o) => o.result === 'ambiguous').length;
    t.diagnostic(`${wl.ops.length} requests: ${acked} acknowledged, ${ambiguous} ambiguous; ${r.runs} task runs checked`);
    assert.ok(acked > 20, 'the client got answers');
    assert.ok(r.taskLines > 0, 'worker task logs were read');
    assert.equal(
      violationCount(r),
      0,
      JSON.stringify({ lost: r.lost, resurrected: r.resurrected, reanswered: r.reanswered, orphaned: r.orphaned, overlaps: r.overlaps }, null, 1).slice(0, 4000),
    );
    const names = new Set(final.list.map((x) => x.name));
    for (const n of nodes) assert.ok(names.has(`via-${n.name}`), `via-${n.name} kept`);
    for (const cd of countdowns) assert.ok(names.has(cd), `${cd} kept`);
  });
});

test('a secure 3-node NATS cluster: routes log in over TLS; users, permissions and results as on one server', { timeout: 240_000 }, async () => {
  const c = await cluster({ masters: 2, workers: 0, natsNodes: 3, secure: true, ttlSeconds: 2 });
  for (const id of ['w1', 'w2']) c.startWorker(id, ['--tasks', EXAMPLES]);
  await c.ready(2, 90_000);
  const client = await c.client();
  // m1 and w1 on n1, m2 and w2 on n2: a client given all three URLs lands anywhere.
  await client.add('count-secure', { kind: 'countdown', from: 5, stepMs: 20 });
  const done = await waitFor('count-secure completed', async () => {
    const r = await client.get('count-secure');
    return r.state === 'completed' && r;
  }, 60_000);
  assert.deepEqual(done.result, { counted: 5, attempt: 1 });
  const jsm = await client.nc.jetstreamManager({ checkAPI: false });
  const info = await jsm.streams.info(RESULTS_STREAM, { subjects_filter: subjects.results('count-secure') });
  assert.equal(info.config.num_replicas, 3);
  assert.equal(info.state.subjects?.[subjects.results('count-secure')], 5);
  for (const n of c.natsCluster!.nodes) {
    const conf = readFileSync(join(c.dir, 'nats', n.name, 'nats.conf'), 'utf8');
    assert.match(conf, /cluster \{[^]*authorization \{[^]*verify: true/, `${n.name} routes log in over verified TLS`);
  }
});
