// Secure mode (`gaffer dev --secure`, cluster({ secure: true })): NATS with TLS
// and nats.conf's users, etcd with TLS and RBAC, every process logged in as
// its own role. Nobody gets in without credentials; a worker's etcd identity
// can touch nothing but its own registration; and the core checks hold: adds
// through followers, a task completing (results through JetStream), worker
// loss and leader failover, with the NATS server refusing gaffer nothing.
// etcd's login tokens live 5 s here, so processes outlive their tokens.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { connect, ErrorCode as NatsErrorCode, type NatsError } from 'nats';
import { cluster, converged, waitFor } from '../harness.js';
import { CLI_PATH } from '#devcluster/cluster.js';
import { EtcdStore } from '#platform/etcd/store.js';
import { readEtcdTls } from '#platform/etcd/tls.js';
import { connectBus, inboxPrefixFor } from '#platform/nats/bus.js';
import { makeCerts } from '#devcluster/secure.js';
import { startNats } from '#devcluster/servers.js';
import { readResults } from '#platform/nats/results.js';
import { parseEtcdAuth, tlsFiles, UsageError } from '#platform/config.js';
import { isReplySubject } from '#protocol/subjects.js';
import { keys } from '#protocol/keys.js';
import type { Resource } from '#protocol/messages.js';

const EXAMPLES = fileURLToPath(new URL('../../../examples/kinds.mjs', import.meta.url));
const SHARDS = fileURLToPath(new URL('../../../test/fixtures/kinds/shards.mjs', import.meta.url));

test('the pieces: reply subjects, inbox prefixes, TLS and auth settings', () => {
  for (const r of ['_INBOX.abc.1', '_INBOX_client.abc.1', '_INBOX_worker-w1.x']) assert.equal(isReplySubject(r), true, r);
  for (const r of ['events.leader.elected', 'worker.w1.assign', '_INBOX_.x', '_INBOX_client', '_INBOXclient.x', '_INBOX_a b.x', '_INBOX_a..x']) {
    assert.equal(isReplySubject(r), false, r);
  }
  assert.equal(inboxPrefixFor('client'), '_INBOX_client');
  assert.equal(inboxPrefixFor('worker-w1'), '_INBOX_worker-w1');
  assert.equal(inboxPrefixFor(undefined), undefined);
  assert.equal(inboxPrefixFor('a.b'), undefined, 'not a plain token: the default prefix stays');
  assert.deepEqual(tlsFiles('--nats', { ca: '/ca.pem' }), { caFile: '/ca.pem' });
  assert.equal(tlsFiles('--nats', {}), undefined);
  assert.throws(() => tlsFiles('--etcd', { cert: '/c.pem' }), UsageError);
  assert.throws(() => parseEtcdAuth('worker-w1', undefined), UsageError);
  assert.throws(() => parseEtcdAuth(undefined, 'secret'), UsageError);
  assert.deepEqual(parseEtcdAuth('master', 'secret'), { username: 'master', password: 'secret' });
});

test('a client certificate, for a NATS server that verifies clients (--nats-cert, --nats-key)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gaffer-mtls-'));
  const certs = makeCerts(join(dir, 'certs'));
  const tls = `tls {\n  cert_file: "${certs.nats.certFile}"\n  key_file: "${certs.nats.keyFile}"\n  ca_file: "${certs.ca}"\n  verify: true\n}\n`;
  const server = await startNats({ dir, extraConfig: tls, jetstream: false });
  t.after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const url = server.url.replace('127.0.0.1', 'localhost');
  const nc = await connectBus({ url, name: 'mtls', tls: { caFile: certs.ca, ...certs.client }, connectTimeoutMs: 5000 });
  await nc.close();
  await assert.rejects(connectBus({ url, name: 'no-cert', tls: { caFile: certs.ca }, connectTimeoutMs: 5000 }));
  await assert.rejects(connectBus({ url, name: 'bad-path', tls: { caFile: join(dir, 'nope.pem') } }), UsageError);
});

test('secure cluster: TLS and auth on NATS and etcd', async (t) => {
  const t0 = performance.now();
  const c = await cluster({ masters: 3, workers: 0, ttlSeconds: 2, secure: true, etcdAuthTokenTtl: 5 });
  for (const id of ['w1', 'w2', 'w3']) c.startWorker(id, ['--tasks', EXAMPLES, '--tasks', SHARDS]);
  const secure = c.secure!;
  const status = await c.ready(3);
  const client = await c.client();
  t.diagnostic(`secure cluster ready in ${(performance.now() - t0).toFixed(0)} ms, leader ${status.leader}`);
  const endpoints = c.etcdEndpoints.split(',');
  const etcdTls = readEtcdTls({ caFile: secure.certs.ca });
  const stores: EtcdStore[] = [];
  t.after(() => stores.forEach((s) => s.close()));
  const etcdAs = async (who: 'master' | 'worker', id: string): Promise<EtcdStore> => {
    const cred = secure.credentials(who, id);
    const s = await EtcdStore.connect(endpoints, {
      timeoutMs: 5000,
      tls: etcdTls,
      auth: { username: cred.etcdUser, password: cred.etcdPass },
      ...(who === 'worker' ? { probePrefix: keys.assignments(id) } : {}),
    });
    stores.push(s);
    return s;
  };

  await t.test('nobody gets in without TLS and credentials', async () => {
    const refused = (e: NatsError) => e.code === NatsErrorCode.AuthorizationViolation;
    await assert.rejects(connect({ servers: c.natsUrl, tls: { caFile: secure.certs.ca }, reconnect: false }), refused);
    await assert.rejects(connect({ servers: c.natsUrl, tls: { caFile: secure.certs.ca }, user: 'client', pass: 'not-it', reconnect: false }), refused);
    // Without the CA the server's certificate is not trusted; without TLS there is no connection at all.
    await assert.rejects(connect({ servers: c.natsUrl, user: 'client', pass: secure.client().pass, reconnect: false }));
    await assert.rejects(connect({ servers: c.natsUrl, user: 'client', pass: secure.client().pass, tls: null, reconnect: false }));
    // etcd: no user, a wrong password, or no TLS.
    await assert.rejects(EtcdStore.connect(endpoints, { timeoutMs: 3000, tls: etcdTls }), /user name is empty/);
    await assert.rejects(EtcdStore.connect(endpoints, { timeoutMs: 3000, tls: etcdTls, auth: { username: 'master', password: 'not-it' } }), /authentication failed/);
    await assert.rejects(EtcdStore.connect(endpoints.map((e) => e.replace('https:', 'http:')), { timeoutMs: 3000, auth: { username: 'root', password: secure.etcdRootPassword } }));
  });

  await t.test('the CLI: credentials and the CA from the environment, usage errors for bad settings', () => {
    const base = { ...process.env, NATS_URL: c.natsUrl, NATS_USER: 'client', NATS_PASSWORD: secure.client().pass };
    const run = (args: string[], env: NodeJS.ProcessEnv) => spawnSync(process.execPath, [CLI_PATH, ...args], { env, encoding: 'utf8', timeout: 30000 });
    const ok = run(['status', '--json'], { ...base, NATS_CA: secure.certs.ca });
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { leader: string }).leader.length > 0, true);
    assert.equal(run(['status', '--nats-ca', secure.certs.ca], base).status, 0, 'the flag works as the env does');
    assert.equal(run(['status'], base).status, 3, 'an untrusted server certificate: unreachable');
    assert.equal(run(['status', '--nats-ca', '/nonexistent/ca.pem'], base).status, 2, 'an unreadable CA: usage');
    const worker = run(['worker', '--id', 'w9', '--nats', c.natsUrl, '--etcd', c.etcdEndpoints], { ...process.env, ETCD_USER: 'worker' });
    assert.equal(worker.status, 2, 'an etcd user without ETCD_PASSWORD: usage');
    assert.match(worker.stderr, /ETCD_PASSWORD/);
  });

  await t.test('a worker\'s etcd identity writes nothing but its registration, and reads only its own assignments', async () => {
    const master = await etcdAs('master', 'm1');
    const w1 = await etcdAs('worker', 'w1');
    const denied = /permission denied/;
    const put = (key: string) => w1.txn(undefined, [{ put: key, value: Buffer.from('forged') }]);
    for (const key of [
      keys.worker('w2'), keys.worker('w10'), keys.candidate('1'), keys.commitChain,
      keys.resource('forged'), keys.assignment('w1', 'forged'), keys.assignment('w2', 'forged'),
      keys.checkpoint('forged'), keys.cordon('w2'), keys.dedupe(1, 1, 1),
    ]) {
      await assert.rejects(put(key), denied, `put ${key}`);
    }
    await assert.rejects(w1.txn(undefined, [{ del: keys.worker('w2') }]), denied);
    for (const prefix of [keys.assignments('w2'), keys.electionPrefix, keys.resourcesPrefix, keys.workersPrefix]) {
      await assert.rejects(w1.range(prefix), denied, `range ${prefix}`);
    }
    await w1.range(keys.assignments('w1'));
    await w1.range(keys.checkpointsPrefix);
    // Revoking a lease deletes its keys, so etcd asks for write permission on them:
    // neither the leader's election lease nor another worker's lease.
    const leaderKey = (await master.range(keys.electionPrefix)).kvs.sort((a, b) => a.createRevision - b.createRevision)[0]!;
    const w2Key = (await master.range(keys.worker('w2'))).kvs[0]!;
    await assert.rejects(w1.revokeLease(leaderKey.lease), denied);
    await assert.rejects(w1.revokeLease(w2Key.lease), denied);
    assert.equal((await master.range(keys.worker('w2'))).kvs.length, 1, 'w2 is still registered');
    assert.equal((await client.status()).leader, status.leader, 'the leader did not change');
  });

  await t.test('adds go through followers and are answered', async () => {
    for (let i = 0; i < 30; i++) {
      const r = await client.add(`secure-${i}`);
      assert.equal(r.created, true);
      assert.ok(r.resource.worker, 'placed on a worker');
    }
    const served = new Map<string, number>();
    for await (const s of await client.nc.services.client().stats('gaffer')) {
      const id = (s.metadata as Record<string, string>)?.id ?? s.id;
      served.set(id, s.endpoints?.find((e) => e.subject === 'resource.add')?.num_requests ?? 0);
    }
    const leader = (await client.status()).leader;
    const viaFollowers = [...served].filter(([id]) => id !== leader).reduce((n, [, v]) => n + v, 0);
    assert.ok(viaFollowers > 0, `followers served ${viaFollowers} of 30 adds (${JSON.stringify([...served])})`);
    await converged(c);
  });

  await t.test('a task completes, its results stored through the worker\'s inbox and read through the client\'s', async () => {
    await client.add('secure-count', { kind: 'countdown', from: 5, stepMs: 20 });
    const r = await waitFor('secure-count to complete', async () => {
      const got = await client.get('secure-count');
      return got.state === 'completed' ? got : undefined;
    }, 30000);
    assert.deepEqual(r.result, { counted: 5, attempt: 1 });
    const items: unknown[] = [];
    for await (const rec of readResults(client.nc, 'secure-count')) items.push(rec.item);
    assert.deepEqual(items, [5, 4, 3, 2, 1].map((n) => ({ n })));
    await client.delete('secure-count'); // a completed resource holds no worker: out of the way of converged()
  });

  await t.test('a sharded resource passes items through its shard queues and completes', async () => {
    await client.add('secure-relay', { kind: 'relay', shards: 3, items: 9, hops: 2 });
    const r = await waitFor('secure-relay to complete', async () => {
      const got = await client.get('secure-relay');
      return got.state === 'completed' || got.state === 'failed' ? got : undefined;
    }, 60000);
    assert.equal(r.state, 'completed', r.error);
    await client.delete('secure-relay');
  });

  await t.test('worker SIGKILL: its resources run elsewhere', async () => {
    const before = await converged(c);
    const victim = before.find((r) => r.worker)!.worker!;
    const victims = before.filter((r) => r.worker === victim).map((r) => r.name);
    await c.workers.get(victim)!.kill();
    const after = await converged(c, 20000);
    for (const name of victims) {
      const r = after.find((x: Resource) => x.name === name);
      assert.ok(r && r.worker && r.worker !== victim, `${name} moved off ${victim}`);
    }
    c.startWorker(victim, ['--tasks', EXAMPLES, '--tasks', SHARDS]);
    await c.ready(3);
  });

  await t.test('leader SIGKILL: a new leader serves and every acknowledged resource is kept', async () => {
    const before = await converged(c);
    const old = (await client.status()).leader;
    await c.masters.get(old)!.kill();
    await waitFor('a new leader', async () => {
      const st = await client.call<{ leader: string }>('cluster.status', {}, 1000).catch(() => undefined);
      return st && st.leader !== old ? st : undefined;
    });
    assert.equal((await client.add('after-secure-failover')).created, true);
    const after = await converged(c);
    for (const b of before) assert.equal(after.find((x) => x.name === b.name)?.id, b.id, `${b.name} kept`);
  });

  await t.test('the NATS server refused gaffer nothing', async () => {
    const log = readFileSync(join(c.dir, 'nats', 'nats.log'), 'utf8').split('\n');
    // The refusals above were on purpose and name no user, or a wrong password: none is a permission violation.
    const violations = log.filter((l) => /Violation/.test(l) && /User "(master|worker|worker-w\d|client)"/.test(l));
    assert.deepEqual(violations, [], 'no permission violations for gaffer users');
  });
});
