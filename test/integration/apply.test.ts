// resource.apply and paged, filtered resource.list against real nats-server,
// etcd and gaffer processes, driven by a plain nats.js client (no gaffer code
// on the client side): what any client in any language would send.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { cluster, rawConnect, waitFor } from '../harness.js';

type Reply = { ok: boolean; error?: { code: string; message: string }; [k: string]: unknown };
type Result = { name: string; id?: string; outcome?: string; error?: { code: string; message: string } };
type ApplyReply = Reply & { results: Result[]; pruned: string[]; dryRun?: boolean };
type Res = { name: string; id: string; state: string; worker: string | null; attempt: number; spec: Record<string, unknown> };
type ListReply = Reply & { resources: Res[]; next?: string };

const enc = new TextEncoder();
const dec = new TextDecoder();

async function req<T extends Reply>(nc: NatsConnection, subject: string, body: unknown, id?: string): Promise<T> {
  const h = natsHeaders();
  if (id) h.set('Gaffer-Request-Id', id);
  // Generous: the leader answers after its commit, on a machine shared with other tests.
  const m = await nc.request(subject, enc.encode(JSON.stringify(body)), { timeout: 15000, headers: h });
  return JSON.parse(dec.decode(m.data)) as T;
}

/** listAll pages through resource.list with `filter`, `limit` at a time, checking each page's shape. */
async function listAll(nc: NatsConnection, filter: Record<string, unknown>, limit: number): Promise<Res[]> {
  const out: Res[] = [];
  for (let after: string | undefined, pages = 0; ; pages++) {
    assert.ok(pages < 1000, 'pages end');
    const page = await req<ListReply>(nc, 'resource.list', { ...filter, limit, ...(after ? { after } : {}) });
    assert.equal(page.ok, true, JSON.stringify(page.error));
    assert.ok(page.resources.length <= limit);
    out.push(...page.resources);
    if (page.next === undefined) return out;
    after = page.next;
  }
}

test('resource.apply and paged lists, from a plain NATS client', async (t) => {
  const c = await cluster({ masters: 2, workers: 2, ttlSeconds: 2 });
  await c.ready(2);
  const nc = await rawConnect(c.natsUrl);

  await t.test('mixed good and bad items: each answered in order, the good ones applied and running', async () => {
    const resources = [
      ...Array.from({ length: 40 }, (_, i) => ({ name: `app-${String(i).padStart(2, '0')}`, spec: { labels: { team: i % 2 ? 'odd' : 'even' } } })),
      { name: 'bad name' },
      { name: 'app-00' },
      { name: 'bad-spec', spec: { kind: 'no.pe' } },
      { name: 'solo', spec: {} },
    ];
    const r = await req<ApplyReply>(nc, 'resource.apply', { resources }, 'apply-1');
    assert.equal(r.ok, true, JSON.stringify(r.error));
    assert.equal(r.results.length, resources.length);
    assert.deepEqual(r.results.map((x) => x.name), resources.map((x) => x.name));
    assert.deepEqual(r.results.slice(40, 43).map((x) => x.error?.code), ['BAD_REQUEST', 'BAD_REQUEST', 'BAD_REQUEST']);
    assert.ok(r.results.slice(0, 40).every((x) => x.outcome === 'created' && x.id));
    assert.equal(r.results[43]!.outcome, 'created');
    assert.deepEqual(r.pruned, []);
    await waitFor('all 41 running', async () => (await listAll(nc, { state: 'running' }, 50)).length === 41 || undefined, 30000);
    const status = await req<Reply & { resources: { total: number; byState: Record<string, number> } }>(nc, 'cluster.status', {});
    assert.deepEqual(status.resources, { total: 41, byState: { running: 41 } });
  });

  await t.test('a re-sent apply with the same request id gets its first answer and changes nothing', async () => {
    const first = await req<ApplyReply>(nc, 'resource.apply', { resources: [{ name: 'solo', spec: { v: 2 } }] }, 'apply-2');
    assert.deepEqual(first.results.map((x) => x.outcome), ['updated']);
    // The same id with a different body: the first answer, and the first body's effect only.
    const again = await req<ApplyReply>(nc, 'resource.apply', { resources: [{ name: 'solo', spec: { v: 3 } }] }, 'apply-2');
    assert.deepEqual(again, first);
    const solo = await req<Reply & { resource: Res }>(nc, 'resource.get', { name: 'solo' });
    assert.deepEqual(solo.resource.spec, { v: 2 });
    // The update is the task's next attempt, and it runs.
    await waitFor('solo running its second attempt', async () => {
      const g = await req<Reply & { resource: Res }>(nc, 'resource.get', { name: 'solo' });
      return (g.resource.state === 'running' && g.resource.attempt === 2) || undefined;
    }, 30000);
    const same = await req<ApplyReply>(nc, 'resource.apply', { resources: [{ name: 'solo', spec: { v: 2 } }] });
    assert.deepEqual(same.results.map((x) => x.outcome), ['unchanged']);
  });

  await t.test('prune: a dry run says what would go and deletes nothing; then for real', async () => {
    const keep = Array.from({ length: 10 }, (_, i) => ({ name: `app-${String(i).padStart(2, '0')}`, spec: { labels: { team: i % 2 ? 'odd' : 'even' } } }));
    const dry = await req<ApplyReply>(nc, 'resource.apply', { resources: keep, prune: { prefix: 'app-' }, dryRun: true });
    assert.equal(dry.dryRun, true);
    assert.ok(dry.results.every((x) => x.outcome === 'unchanged'));
    assert.equal(dry.pruned.length, 30);
    assert.equal((await listAll(nc, { prefix: 'app-' }, 7)).length, 40, 'nothing deleted by a dry run');
    const real = await req<ApplyReply>(nc, 'resource.apply', { resources: keep, prune: { prefix: 'app-' } }, 'apply-3');
    assert.deepEqual(real.pruned, dry.pruned);
    assert.deepEqual((await listAll(nc, { prefix: 'app-' }, 7)).map((r) => r.name), keep.map((k) => k.name));
    const byLabel = await req<ApplyReply>(nc, 'resource.apply', { resources: [], prune: { selector: { team: 'odd' } } });
    assert.deepEqual(byLabel.pruned, ['app-01', 'app-03', 'app-05', 'app-07', 'app-09']);
  });

  await t.test('list pages: limit and after walk every match once, next is absent on the last page; filters are the leader\'s', async () => {
    const all = await listAll(nc, {}, 2);
    assert.deepEqual(all.map((r) => r.name), ['app-00', 'app-02', 'app-04', 'app-06', 'app-08', 'solo']);
    const last = await req<ListReply>(nc, 'resource.list', { limit: 6 });
    assert.equal(last.resources.length, 6);
    assert.equal('next' in last, false);
    const onW = await listAll(nc, { worker: all[0]!.worker }, 1);
    assert.ok(onW.length > 0 && onW.every((r) => r.worker === all[0]!.worker));
    assert.deepEqual((await listAll(nc, { labels: { team: 'even' }, state: 'running' }, 3)).length, 5);
    const bad = await req<Reply>(nc, 'resource.list', { state: 'bogus' });
    assert.equal(bad.error?.code, 'BAD_REQUEST');
  });
});
