// nats.conf against a real nats-server: every user can do what its role needs
// and is refused what it must not do. Refusals are asserted on what nats.js
// reports for a `-ERR 'Permissions Violation ...'` from the server: an `error`
// status whose permissionContext names the operation and subject, and, for a
// subscription, the subscription ending with PERMISSIONS_VIOLATION.
// The last test runs real masters and workers with these credentials and
// checks the server logged no violation at all.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  connect,
  consumerOpts,
  ErrorCode as NatsErrorCode,
  Events,
  type Msg,
  type NatsConnection,
  type NatsError,
  RequestStrategy,
  type Status,
  type Subscription,
} from 'nats';
import { Child } from '#devcluster/child.js';
import { CLI_PATH } from '#devcluster/cluster.js';
import { GafferClient } from '#client/client.js';
import { json } from '#protocol/codec.js';
import { ensureResultsStream, readResults, ResultsPublisher } from '#platform/nats/results.js';
import { ensureTaskStateBucket, TaskStateStore } from '#platform/nats/task-state.js';
import { inboxPrefixFor } from '#platform/nats/bus.js';
import { startEtcd, startNats, waitFor, which, type EtcdCluster, type NatsServer } from '#devcluster/servers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CONF = readFileSync(join(ROOT, 'nats.conf'), 'utf8');
const DEADLINE_MS = 5000;

/**
 * withClientUser applies nats.conf's own recipe for one more client user:
 * copy the client block under a new name (its inbox too), let masters and
 * workers answer into that inbox, and give it a dev password.
 */
function withClientUser(conf: string, user: string): string {
  const variable = `GAFFER_NATS_${user.toUpperCase().replace(/-/g, '_')}_PASSWORD`;
  const block = /( {6}\{\n {8}user: "client"[\s\S]*?\n {6}\})/.exec(conf)?.[1];
  assert.ok(block, 'nats.conf has a client block');
  const copy = block
    .replace('user: "client"', `user: "${user}"`)
    .replace('$GAFFER_NATS_CLIENT_PASSWORD', `$${variable}`)
    .replace('"_INBOX_client.>"', `"_INBOX_${user}.>"`);
  const replies = conf.split('"_INBOX_client.>", "_INBOX_master.>"');
  assert.ok(replies.length >= 3, 'masters and workers answer into _INBOX_client and _INBOX_master');
  return replies
    .join(`"_INBOX_client.>", "_INBOX_${user}.>", "_INBOX_master.>"`)
    .replace(block, `${block}\n${copy}`)
    .replace(/^(GAFFER_NATS_CLIENT_PASSWORD: .*)$/m, `$1\n${variable}: "dev-${user}-password"`);
}

/** passwords maps each user in nats.conf to its dev default password, read from the file itself. */
function passwords(conf: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const m of conf.matchAll(/^(GAFFER_NATS_\w+_PASSWORD):\s*"([^"]*)"\s*$/gm)) vars.set(m[1]!, m[2]!);
  const out = new Map<string, string>();
  for (const m of conf.matchAll(/user:\s*"([^"]+)"\s*\n\s*password:\s*\$(\w+)/g)) {
    const pw = vars.get(m[2]!);
    assert.ok(pw, `nats.conf defines a dev default for ${m[2]}`);
    out.set(m[1]!, pw);
  }
  return out;
}
const PASSWORDS = new Map([...passwords(CONF), ...passwords(withClientUser(CONF, 'client-b'))]);

/** serverConfig is nats.conf minus its `port:` line; startNats supplies a free loopback port instead. */
function serverConfig(conf = CONF): string {
  const lines = conf.split('\n');
  const rest = lines.filter((l) => !/^port:\s*\d+\s*$/.test(l));
  assert.equal(lines.length - rest.length, 1, 'nats.conf has exactly one top-level `port:` line');
  return rest.join('\n');
}

/** startConfigured runs a real nats-server on nats.conf (with its include) in a fresh directory. */
async function startConfigured(name: string, conf = CONF): Promise<{ server: NatsServer; dir: string; log: () => string }> {
  const dir = mkdtempSync(join(tmpdir(), `gaffer-${name}-`));
  mkdirSync(join(dir, 'deploy'));
  copyFileSync(join(ROOT, 'deploy', 'nats-passwords.conf'), join(dir, 'deploy', 'nats-passwords.conf'));
  const server = await startNats({ dir, extraConfig: serverConfig(conf) });
  return { server, dir, log: () => readFileSync(join(dir, 'nats.log'), 'utf8') };
}

function deadline<T>(p: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
  let timer: NodeJS.Timeout;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

type Operation = 'publish' | 'subscription';

/** Conn is one user's connection that records every error status the server causes. */
class Conn {
  private readonly errors: Status[] = [];
  private readonly waiters = new Set<() => void>();

  private constructor(readonly user: string, readonly nc: NatsConnection) {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type !== Events.Error) continue;
        this.errors.push(s);
        for (const w of this.waiters) w();
      }
    })().catch(() => undefined);
  }

  /** open logs in as `user` with that user's own inbox prefix, as gaffer does (connectBus). */
  static async open(url: string, user: string): Promise<Conn> {
    const pass = PASSWORDS.get(user);
    assert.ok(pass, `nats.conf has a user ${user}`);
    const nc = await connect({ servers: url, user, pass, name: `natsconf-${user}`, reconnect: false, inboxPrefix: inboxPrefixFor(user)! });
    return new Conn(user, nc);
  }

  /** violation waits for the server to refuse `operation` on `subject` to this user. */
  violation(operation: Operation, subject: string): Promise<Status> {
    const find = () =>
      this.errors.find(
        (s) =>
          s.data === NatsErrorCode.PermissionsViolation &&
          s.permissionContext?.operation === operation &&
          s.permissionContext.subject === subject,
      );
    return deadline(
      new Promise<Status>((resolve) => {
        const check = () => {
          const s = find();
          if (!s) return;
          this.waiters.delete(check);
          resolve(s);
        };
        this.waiters.add(check);
        check();
      }),
      `a permissions violation for ${this.user}: ${operation} to ${subject}`,
    );
  }

  /** refusedSubscription subscribes and expects the server to refuse it, as status and as the subscription's end. */
  async refusedSubscription(subject: string, queue?: string): Promise<void> {
    const sub = this.nc.subscribe(subject, queue ? { queue } : {});
    const ended = (async () => {
      for await (const _ of sub) {
        /* nothing may arrive */
      }
    })();
    await this.violation('subscription', subject);
    await assert.rejects(deadline(ended, `the refused subscription to ${subject} to end`), (err: NatsError) => {
      assert.equal(err.code, NatsErrorCode.PermissionsViolation);
      assert.match(err.message, new RegExp(`Subscription to "${subject.replace(/[.*$>]/g, '\\$&')}"`));
      return true;
    });
    assert.equal(sub.isClosed(), true);
  }

  /** refusedPublish publishes and expects the server to refuse it. */
  async refusedPublish(subject: string, reply?: string): Promise<void> {
    this.nc.publish(subject, json.encode({ from: this.user }), reply ? { reply } : undefined);
    await this.violation('publish', subject);
  }

  /** noViolations asserts the server refused nothing to this user so far (after a round trip). */
  async noViolations(): Promise<void> {
    await this.nc.flush();
    assert.deepEqual(this.errors, [], `${this.user} had no refusals`);
  }

  async close(): Promise<void> {
    if (!this.nc.isClosed()) await this.nc.close();
  }
}

/** Inbox reads one subscription message by message, each within the deadline. */
class Inbox {
  private readonly it: AsyncIterator<Msg>;
  constructor(readonly sub: Subscription) {
    this.it = sub[Symbol.asyncIterator]();
  }
  async next(what: string): Promise<Msg> {
    const r = await deadline(this.it.next(), what);
    assert.equal(r.done, false, `${what}: the subscription ended`);
    return r.value as Msg;
  }
}

describe('nats.conf', () => {
  let server: NatsServer;
  let dir: string;
  const conns: Conn[] = [];
  const as = async (user: string): Promise<Conn> => {
    const c = await Conn.open(server.url, user);
    conns.push(c);
    return c;
  };

  before(async () => {
    ({ server, dir } = await startConfigured('natsconf'));
  });
  after(async () => {
    await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
    await server?.stop();
    if (dir && process.env.GAFFER_KEEP_LOGS !== '1') rmSync(dir, { recursive: true, force: true });
  });

  it('is accepted by nats-server -t as it is in the repository', () => {
    const r = spawnSync(which('nats-server'), ['-t', '-c', join(ROOT, 'nats.conf')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /configuration file .*nats\.conf is valid/);
  });

  it('refuses connections without credentials or with a wrong password', async () => {
    await assert.rejects(connect({ servers: server.url, reconnect: false }), (e: NatsError) => e.code === NatsErrorCode.AuthorizationViolation);
    await assert.rejects(
      connect({ servers: server.url, user: 'client', pass: 'not-the-password', reconnect: false }),
      (e: NatsError) => e.code === NatsErrorCode.AuthorizationViolation,
    );
  });

  it('lets a client request cluster.status and resource.* from masters in the services API, queue "masters"', async () => {
    const master = await as('master');
    const client = await as('client');
    const svc = await master.nc.services.add({ name: 'gaffer', version: '0.1.0', queue: 'masters' });
    for (const subject of ['cluster.status', 'resource.add']) {
      svc.addEndpoint(subject.replace('.', '-'), {
        subject,
        handler: (_err, m) => void m.respond(json.encode({ ok: true, subject: m.subject })),
      });
    }
    await master.nc.flush();
    for (const subject of ['cluster.status', 'resource.add']) {
      const reply = await client.nc.request(subject, json.encode({}), { timeout: DEADLINE_MS });
      assert.deepEqual(json.decode(reply.data), { ok: true, subject });
    }
    // Discovery: the client may ping the service ($SRV.>) and the master answers.
    const pongs = [];
    const discovery = client.nc.services.client({ strategy: RequestStrategy.Count, maxMessages: 1, maxWait: DEADLINE_MS });
    for await (const p of await discovery.ping('gaffer')) pongs.push(p);
    assert.equal(pongs.length, 1);
    assert.equal(pongs[0]!.name, 'gaffer');
    await svc.stop();
    await master.noViolations();
    await client.noViolations();
  });

  it('carries a request from a follower master to the leader, who replies to the client inbox', async () => {
    const follower = await as('master');
    const leader = await as('master');
    const client = await as('client');
    follower.nc.subscribe('resource.get', {
      queue: 'masters',
      callback: (_e, m) => follower.nc.publish('master.leader.m2', m.data, { reply: m.reply! }),
    });
    leader.nc.subscribe('master.leader.m2', { callback: (_e, m) => void m.respond(json.encode({ ok: true, by: 'm2' })) });
    await follower.nc.flush();
    await leader.nc.flush();
    const reply = await client.nc.request('resource.get', json.encode({ name: 'x' }), { timeout: DEADLINE_MS });
    assert.deepEqual(json.decode(reply.data), { ok: true, by: 'm2' });
    await follower.noViolations();
    await leader.noViolations();
    await client.noViolations();
  });

  it('lets a master subscribe to client subjects only as a member of the masters queue', async () => {
    const master = await as('master');
    await master.refusedSubscription('resource.add');
    await master.refusedSubscription('resource.list', 'eavesdroppers');
  });

  it('refuses a client master.leader.*, worker.*.assign and events, and drops what it sent', async () => {
    const client = await as('client');
    const master = await as('master');
    const worker = await as('worker-w1');
    const assigns = new Inbox(worker.nc.subscribe('worker.w1.assign'));
    await worker.nc.flush();

    await client.refusedPublish('master.leader.m1');
    await client.refusedPublish('worker.w1.assign');
    await client.refusedPublish('events.leader.elected');
    await client.refusedSubscription('resource.add');
    await client.refusedSubscription('worker.w1.status');
    await client.refusedSubscription('master.leader.*');

    // Had the server delivered the client's assign, the worker would see it before this one.
    master.nc.publish('worker.w1.assign', json.encode({ from: 'master' }));
    const first = await assigns.next('the master assign on worker.w1.assign');
    assert.deepEqual(json.decode(first.data), { from: 'master' });
  });

  it('refuses a worker resource.add, other workers\' subjects and assignments', async () => {
    const worker = await as('worker-w1');
    const master = await as('master');
    const client = await as('client');
    const adds = new Inbox(master.nc.subscribe('resource.add', { queue: 'masters' }));
    await master.nc.flush();

    await worker.refusedPublish('resource.add');
    await worker.refusedPublish('worker.w2.assign');
    await worker.refusedPublish('master.leader.m1');
    await worker.refusedPublish('events.leader.elected');
    await worker.refusedSubscription('worker.w2.assign');
    await worker.refusedSubscription('worker.w2.>');
    await worker.refusedSubscription('worker.*.assign');
    await worker.refusedSubscription('events.>');

    // Had the server delivered the worker's resource.add, the master would see it first.
    client.nc.publish('resource.add', json.encode({ from: 'client' }));
    const first = await adds.next('the client resource.add at the master');
    assert.deepEqual(json.decode(first.data), { from: 'client' });
  });

  it('lets a worker take its own assignments, answer its own status, publish task events and follow elections', async () => {
    const worker = await as('worker-w1');
    const master = await as('master');
    const client = await as('client');
    const assigns = new Inbox(worker.nc.subscribe('worker.w1.assign'));
    const elected = new Inbox(worker.nc.subscribe('events.leader.elected'));
    worker.nc.subscribe('worker.w1.status', { callback: (_e, m) => void m.respond(json.encode({ ok: true, id: 'w1', running: [] })) });
    const watchEvents = new Inbox(client.nc.subscribe('events.>'));
    const watchAssigns = new Inbox(client.nc.subscribe('worker.*.assign'));
    await worker.nc.flush();
    await client.nc.flush();

    master.nc.publish('worker.w1.assign', json.encode({ type: 'put' }));
    assert.deepEqual(json.decode((await assigns.next('worker.w1.assign at the worker')).data), { type: 'put' });
    assert.equal((await watchAssigns.next('worker.w1.assign at the watching client')).subject, 'worker.w1.assign');

    master.nc.publish('events.leader.elected', json.encode({ leader: 'm1' }));
    assert.deepEqual(json.decode((await elected.next('events.leader.elected at the worker')).data), { leader: 'm1' });
    assert.equal((await watchEvents.next('events.leader.elected at the client')).subject, 'events.leader.elected');

    worker.nc.publish('events.task.started', json.encode({ worker: 'w1' }));
    assert.equal((await watchEvents.next('events.task.started at the client')).subject, 'events.task.started');

    const st = await client.nc.request('worker.w1.status', json.encode({}), { timeout: DEADLINE_MS });
    assert.deepEqual(json.decode(st.data), { ok: true, id: 'w1', running: [] });
    await worker.noViolations();
    await master.noViolations();
    await client.noViolations();
  });

  it('lets a worker reply only to an inbox, not to a reply subject a requester made up', async () => {
    const worker = await as('worker-w2');
    const client = await as('client');
    worker.nc.subscribe('worker.w2.status', { callback: (_e, m) => void m.respond(json.encode({ ok: true })) });
    await worker.nc.flush();
    client.nc.publish('worker.w2.status', json.encode({}), { reply: 'events.leader.elected' });
    await worker.violation('publish', 'events.leader.elected');
  });

  it('lets the shared worker user serve any worker id, and nothing a master does', async () => {
    const worker = await as('worker');
    const master = await as('master');
    const id = 'worker-1a2b3c4d';
    const assigns = new Inbox(worker.nc.subscribe(`worker.${id}.assign`));
    await worker.nc.flush();
    master.nc.publish(`worker.${id}.assign`, json.encode({ type: 'put' }));
    assert.equal((await assigns.next(`worker.${id}.assign at the shared worker`)).subject, `worker.${id}.assign`);
    await worker.noViolations();
    await worker.refusedPublish(`worker.${id}.assign`);
    await worker.refusedPublish('resource.add');
    await worker.refusedSubscription('resource.add');
    await worker.refusedSubscription('master.leader.m1');
  });

  it('makes SYS the system account: sys sees a GAFFER user disconnect', async () => {
    const sys = await as('sys');
    const advisories = new Inbox(sys.nc.subscribe('$SYS.ACCOUNT.GAFFER.DISCONNECT'));
    await sys.nc.flush();
    const client = await Conn.open(server.url, 'client');
    await client.close();
    const m = await advisories.next('a disconnect advisory');
    const adv = json.decode(m.data) as { client?: { acc?: string; user?: string } };
    assert.equal(adv.client?.acc, 'GAFFER');
    assert.equal(adv.client?.user, 'client');
    await sys.noViolations();
  });

  // --- task results on JetStream (the GAFFER account has JetStream enabled) ---

  const STREAM_API = ['CREATE', 'UPDATE', 'DELETE', 'PURGE'].map((op) => `$JS.API.STREAM.${op}.GAFFER_RESULTS`);

  it('lets only a master create or change the results stream, and nobody delete or purge it', async () => {
    const client = await as('client');
    const worker = await as('worker');
    const master = await as('master');
    for (const c of [client, worker]) for (const subject of STREAM_API) await c.refusedPublish(subject);
    for (const subject of STREAM_API.slice(2)) await master.refusedPublish(subject);
    await master.refusedPublish('$JS.API.STREAM.MSG.DELETE.GAFFER_RESULTS');
    await master.refusedPublish('$JS.API.STREAM.CREATE.OTHER');
    const other = await as('master');
    const [a, b] = await Promise.all([ensureResultsStream(master.nc), ensureResultsStream(other.nc)]);
    assert.equal(a.created, b.created);
    assert.equal((await ensureResultsStream(other.nc, { maxBytes: 2 ** 30 - 1 })).config.max_bytes, 2 ** 30 - 1, 'a master may update it');
    await ensureResultsStream(master.nc);
    await other.noViolations();
  });

  it('lets every worker user store results and receive the PubAck, and nothing more of JetStream', async () => {
    const master = await as('master');
    await ensureResultsStream(master.nc);
    for (const user of ['worker', 'worker-w1']) {
      const worker = await as(user);
      const pub = new ResultsPublisher(worker.nc);
      const first = await pub.emit('perm-results', `rid-${user}`, 'item-1', { by: user });
      assert.equal(first.duplicate, false);
      assert.deepEqual(await pub.emit('perm-results', `rid-${user}`, 'item-1', { by: user }), { duplicate: true, seq: first.seq });
      await worker.noViolations();
      await worker.refusedPublish('$JS.API.STREAM.INFO.GAFFER_RESULTS');
      await worker.refusedPublish('$JS.API.CONSUMER.CREATE.GAFFER_RESULTS');
    }
  });

  it('lets masters create the task store bucket, and every worker user read and write its keys (ctx.store); clients neither', async () => {
    const master = await as('master');
    await ensureTaskStateBucket(master.nc);
    await ensureTaskStateBucket(master.nc, { maxBytes: 2 ** 30 - 1 });
    await master.noViolations();
    for (const user of ['worker', 'worker-w1']) {
      const worker = await as(user);
      const store = new TaskStateStore(worker.nc);
      await store.put(`rid-${user}`, 'page.00ff', { by: user });
      assert.deepEqual(await store.get(`rid-${user}`, 'page.00ff'), { by: user });
      await store.delete(`rid-${user}`, 'page.00ff');
      assert.equal(await store.get(`rid-${user}`, 'page.00ff'), undefined);
      await worker.noViolations();
      await worker.refusedPublish('$JS.API.STREAM.CREATE.KV_GAFFER_TASK_STATE');
      await worker.refusedPublish('$JS.API.STREAM.PURGE.KV_GAFFER_TASK_STATE');
    }
    const client = await as('client');
    await client.refusedPublish('$KV.GAFFER_TASK_STATE.rid-x.k');
    await client.refusedPublish('$JS.API.DIRECT.GET.KV_GAFFER_TASK_STATE.$KV.GAFFER_TASK_STATE.rid-x.k');
  });

  it('lets a client read results through an ordered consumer (with flow control), but not write them', async () => {
    const master = await as('master');
    const worker = await as('worker-w2');
    const client = await as('client');
    await ensureResultsStream(master.nc);
    // Enough data that the server asks the client for flow control ($JS.FC.GAFFER_RESULTS.>).
    const pub = new ResultsPublisher(worker.nc);
    const page = 'p'.repeat(32 * 1024);
    for (let i = 0; i < 300; i++) await pub.emit('perm-read', 'rid-r', `page-${i}`, { i, page });
    const sub = await client.nc
      .jetstream()
      .subscribe('results.perm-read', consumerOpts().orderedConsumer().bindStream('GAFFER_RESULTS').filterSubject('results.perm-read').deliverAll());
    let n = 0;
    await deadline((async () => {
      for await (const m of sub) if (++n && m.info.pending === 0) break;
    })(), 'the ordered consumer to read 300 results');
    const fc = (sub as unknown as { info: { flow_control: { fc_count: number } } }).info.flow_control.fc_count;
    sub.unsubscribe();
    assert.equal(n, 300);
    assert.ok(fc > 0, 'the server asked for flow control');
    const items: unknown[] = [];
    await deadline((async () => {
      for await (const r of readResults(client.nc, 'perm-read')) items.push((r.item as { i: number }).i);
    })(), 'readResults to end');
    assert.deepEqual(items, Array.from({ length: 300 }, (_, i) => i));
    await client.noViolations();

    await client.refusedPublish('results.perm-read');
    await client.refusedPublish('$JS.API.STREAM.MSG.DELETE.GAFFER_RESULTS');
    await client.refusedPublish('$JS.API.CONSUMER.DURABLE.CREATE.GAFFER_RESULTS.mine');
    await client.refusedPublish('$JS.API.CONSUMER.DELETE.GAFFER_RESULTS.any');
    // The ephemeral-create subject the client may use refuses a durable consumer itself.
    const durable = await client.nc.request(
      '$JS.API.CONSUMER.CREATE.GAFFER_RESULTS',
      json.encode({ stream_name: 'GAFFER_RESULTS', config: { durable_name: 'mine', ack_policy: 'none' } }),
      { timeout: DEADLINE_MS },
    );
    assert.equal((json.decode(durable.data) as { error?: { err_code?: number } }).error?.err_code, 10020);
  });
});

describe('nats.conf: replies stay with the user who asked', () => {
  // Two client users, made by nats.conf's recipe for adding one (withClientUser):
  // each may read only its own inbox prefix, _INBOX_<user>.>. Before, every user
  // subscribed to _INBOX.>, and a second client saw the first one's answers.
  let nats: { server: NatsServer; dir: string } | undefined;
  const conns: Conn[] = [];
  const as = async (user: string): Promise<Conn> => {
    const c = await Conn.open(nats!.server.url, user);
    conns.push(c);
    return c;
  };
  /** serve answers resource.get, as a master in the masters queue, naming who asked. */
  const serve = async (): Promise<Conn> => {
    const master = await as('master');
    master.nc.subscribe('resource.get', {
      queue: 'masters',
      callback: (_e, m) => void m.respond(json.encode({ ok: true, for: (json.decode(m.data) as { who: string }).who })),
    });
    await master.nc.flush();
    return master;
  };

  before(async () => {
    nats = await startConfigured('natsconf-inbox', withClientUser(CONF, 'client-b'));
  });
  after(async () => {
    await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
    await nats?.server.stop();
    if (nats && process.env.GAFFER_KEEP_LOGS !== '1') rmSync(nats.dir, { recursive: true, force: true });
  });

  it('lets one client not read another client\'s replies: each subscribes only under its own prefix', async () => {
    const master = await serve();
    const a = await as('client');
    const b = await as('client-b');
    // What the hole looked like, refused: every inbox, another user's prefix, everything.
    for (const subject of ['_INBOX.>', '_INBOX_client.>', '_INBOX_*.>', '>']) await b.refusedSubscription(subject);
    await a.refusedSubscription('_INBOX_client-b.>');
    // All of b's own prefix: it holds b's reply and nothing of a's.
    const mine = new Inbox(b.nc.subscribe('_INBOX_client-b.>'));
    await b.nc.flush();
    const ra = await a.nc.request('resource.get', json.encode({ who: 'a' }), { timeout: DEADLINE_MS });
    assert.match(ra.subject, /^_INBOX_client\./);
    assert.deepEqual(json.decode(ra.data), { ok: true, for: 'a' });
    const rb = await b.nc.request('resource.get', json.encode({ who: 'b' }), { timeout: DEADLINE_MS });
    assert.deepEqual(json.decode(rb.data), { ok: true, for: 'b' });
    assert.deepEqual(json.decode((await mine.next('b\'s reply under _INBOX_client-b.>')).data), { ok: true, for: 'b' }, 'the first message there is b\'s own');
    await master.noViolations();
  });

  it('keeps every client\'s inbox from masters and workers too', async () => {
    for (const user of ['master', 'worker', 'worker-w1']) {
      const c = await as(user);
      await c.refusedSubscription('_INBOX.>');
      await c.refusedSubscription('_INBOX_client.>');
    }
  });

  it('does not keep two connections of the same user apart (the documented limit: one user per person or program)', async () => {
    await serve();
    const a = await as('client');
    const sameUser = await as('client');
    const spy = new Inbox(sameUser.nc.subscribe('_INBOX_client.>'));
    await sameUser.nc.flush();
    await a.nc.request('resource.get', json.encode({ who: 'a' }), { timeout: DEADLINE_MS });
    assert.deepEqual(json.decode((await spy.next('a\'s reply at the other connection of client')).data), { ok: true, for: 'a' });
    await sameUser.noViolations();
  });
});

describe('nats.conf with real gaffer processes', () => {
  let nats: { server: NatsServer; dir: string; log: () => string } | undefined;
  let etcd: EtcdCluster | undefined;
  const children: Child[] = [];
  let client: GafferClient | undefined;

  after(async () => {
    await client?.close().catch(() => undefined);
    await Promise.all(children.map((c) => c.stop()));
    await etcd?.stop();
    await nats?.server.stop();
    if (nats && process.env.GAFFER_KEEP_LOGS !== '1') rmSync(nats.dir, { recursive: true, force: true });
  });

  /** spawn runs `gaffer <role> ...` logged in as `user`, the way docker-compose.yml runs it. */
  function spawn(name: string, user: string, args: string[]): void {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NATS_URL: nats!.server.url,
      ETCD_ENDPOINTS: etcd!.endpoints.join(','),
      GAFFER_TTL: '2',
      NATS_USER: user,
      NATS_PASSWORD: PASSWORDS.get(user)!,
    };
    delete env.GAFFER_ID;
    const c = new Child({ name, cmd: process.execPath, args: [CLI_PATH, ...args], env, logFile: join(nats!.dir, `${name}.log`) });
    children.push(c.start());
  }

  it('serve clients end to end, and the server refuses them nothing', async () => {
    nats = await startConfigured('natsconf-e2e');
    etcd = await startEtcd({ dir: join(nats.dir, 'etcd') });
    spawn('m1', 'master', ['master', '--id', 'm1']);
    spawn('m2', 'master', ['master', '--id', 'm2']);
    spawn('w1', 'worker-w1', ['worker', '--id', 'w1', '--capacity', '10']);
    spawn('wx', 'worker', ['worker', '--capacity', '10']); // generated id, shared worker user

    client = await GafferClient.connect(nats.server.url, { user: 'client', pass: PASSWORDS.get('client')!, timeoutMs: 5000 });
    const c = client;
    const status = await waitFor(
      'both masters and both workers in cluster.status',
      async () => {
        const s = await c.status();
        return s.masters.length === 2 && s.workers.length === 2 ? s : undefined;
      },
      30000,
    );
    const generated = status.workers.map((w) => w.id).find((id) => id !== 'w1');
    assert.match(generated ?? '', /^worker-/);

    for (let i = 0; i < 12; i++) {
      const r = await c.add(`perm-${i}`);
      assert.ok(r.resource.worker, `perm-${i} is placed`);
    }
    // Each worker runs what it was assigned: assignments reached both kinds of worker user.
    await waitFor(
      'every resource to run on its worker',
      async () => {
        const list = await c.list();
        const running = new Map<string, string[]>();
        for (const w of ['w1', generated!]) running.set(w, (await c.workerStatus(w)).running);
        return list.every((r) => r.worker !== null && running.get(r.worker)?.includes(r.name));
      },
      20000,
    );
    // Followers took some of the requests (queue group), so forwarding to the leader ran too.
    const served = new Map<string, number>();
    for await (const s of await c.nc.services.client().stats('gaffer')) {
      const id = (s.metadata as Record<string, string> | undefined)?.id ?? s.id;
      served.set(id, s.endpoints?.reduce((n, e) => n + e.num_requests, 0) ?? 0);
    }
    const leader = (await c.status()).leader;
    const viaFollower = [...served].filter(([id]) => id !== leader).reduce((n, [, v]) => n + v, 0);
    assert.ok(viaFollower > 0, `the follower served ${viaFollower} requests (${JSON.stringify([...served])})`);

    // The CLI as an operator runs it, credentials from the environment: add --wait follows
    // events and asks the worker's status; watch would subscribe to events.> the same way.
    const cliEnv = { ...process.env, NATS_URL: nats.server.url, NATS_USER: 'client', NATS_PASSWORD: PASSWORDS.get('client')! };
    for (const args of [['add', 'perm-cli', '--wait', '--json'], ['status', '--json']]) {
      const r = spawnSync(process.execPath, [CLI_PATH, ...args], { env: cliEnv, encoding: 'utf8', timeout: 30000 });
      assert.equal(r.status, 0, `gaffer ${args.join(' ')}: ${r.stderr}`);
    }

    const violations = nats.log().split('\n').filter((l) => /Violation/.test(l));
    assert.deepEqual(violations, [], 'nats-server refused gaffer nothing');
  });
});
