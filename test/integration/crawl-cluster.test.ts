// The crawl kind through a real cluster: a 300-page site on loopback crawled
// to completion (each allowed page fetched once, nothing disallowed, the
// per-host rate held in every 1-second window, one result per page in
// JetStream), and the same crawl surviving a SIGKILL of its worker by
// resuming from its checkpoint on another, still with one result per page.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, rawConnect, Recorder, waitFor } from '../harness.js';
import { startSite, type Site } from '../fixtures/site.js';
import { expect } from '../fixtures/crawl-expect.js';
import { readResults } from '#platform/nats/results.js';
import { EtcdStore } from '#platform/etcd/store.js';
import { keys } from '#protocol/keys.js';
import type { GafferClient } from '#client/client.js';
import type { LocalCluster } from '#devcluster/cluster.js';
import type { Resource } from '#protocol/messages.js';

const RPS = 40;

const pathOf = (url: string): string => {
  const u = new URL(url);
  return u.pathname + u.search;
};

function spec(site: Site) {
  return { kind: 'crawl', seeds: [site.seed], maxDepth: 100, maxPages: 10_000, perHostRps: RPS, concurrency: 8, timeoutMs: 1500 };
}

async function completed(client: GafferClient, name: string, timeoutMs = 90_000): Promise<Resource> {
  return waitFor(`${name} to complete`, async () => {
    const r = await client.get(name);
    if (r.state === 'failed') throw new Error(`${name} failed: ${r.error}`);
    return r.state === 'completed' ? r : undefined;
  }, timeoutMs, 200);
}

async function storedResults(c: LocalCluster, name: string): Promise<Array<{ id: string; url: string }>> {
  const nc = await rawConnect(c.natsUrl);
  const out: Array<{ id: string; url: string }> = [];
  for await (const r of readResults(nc, name)) out.push({ id: r.id, url: (r.item as { url: string }).url });
  return out;
}

/** assertRate: the server saw at most RPS requests in every 1-second window (starting at each request). */
function assertRate(site: Site): void {
  const t = site.log.map((l) => l.at).sort((a, b) => a - b);
  let j = 0;
  let worst = 0;
  for (let i = 0; i < t.length; i++) {
    while (j < t.length && t[j]! < t[i]! + 1000) j++;
    worst = Math.max(worst, j - i);
  }
  assert.ok(worst <= RPS, `${worst} requests in one second; the limit is ${RPS}`);
}

function assertOnePerPage(site: Site, stored: Array<{ id: string; url: string }>): void {
  const want = expect(site, { robots: true, maxDepth: 100 }).emitted;
  const ids = stored.map((s) => s.id);
  assert.equal(new Set(ids).size, ids.length, 'no result stored twice');
  assert.deepEqual(new Set(stored.map((s) => pathOf(s.url))), want, 'one result for every allowed reachable page');
}

test('crawl: a 300-page site through the cluster, politely, each page once', async (t) => {
  const site = await startSite({ pages: 300 });
  t.after(() => site.close());
  const c = await cluster({ masters: 1, workers: 1, ttlSeconds: 2 });
  await c.ready(1);
  const client = await c.client();
  await client.add('site', spec(site));
  const r = await completed(client, 'site');
  const want = expect(site, { robots: true, maxDepth: 100 });
  assert.deepEqual(r.result, { pages: want.emitted.size, errors: want.failed.size, skipped: want.skipped.size, parked: [] });
  for (const path of want.emitted) assert.equal(site.hits.get(path), 1, `${path} fetched once`);
  assert.deepEqual([...site.hits.keys()].filter((p) => p.startsWith('/private/')), [], 'nothing disallowed fetched');
  assert.equal(site.hits.get('/robots.txt'), 1);
  assertRate(site);
  assertOnePerPage(site, await storedResults(c, 'site'));
});

test('crawl: its worker SIGKILLed midway, the crawl resumes elsewhere from its checkpoint, one result per page', async (t) => {
  const site = await startSite({ pages: 300 });
  t.after(() => site.close());
  const c = await cluster({ masters: 1, workers: 2, ttlSeconds: 2 });
  await c.ready(2);
  const client = await c.client();
  const started = await Recorder.start<{ name: string; worker: string; attempt: number }>(c.natsUrl, 'events.task.started');
  await client.add('site', spec(site));
  const first = (await waitFor('the crawl to start', async () => started.items.find((e) => e.data.name === 'site')))!.data;
  const store = await EtcdStore.connect(c.etcdEndpoints.split(','), { timeoutMs: 3000 });
  t.after(() => store.close());
  // Kill it once it has checkpointed and gone on: some pages are past the checkpoint.
  await waitFor('a checkpoint and more pages', async () => (await store.range(keys.checkpoint('site'))).kvs.length > 0 && site.log.length > 120, 60_000, 50);
  await c.workers.get(first.worker)!.kill();
  const r = await completed(client, 'site');
  const second = started.items.map((e) => e.data).filter((e) => e.name === 'site' && e.worker !== first.worker);
  assert.ok(second.length > 0, 'a later attempt ran on the other worker');
  assert.ok(second[0]!.attempt > first.attempt);
  const want = expect(site, { robots: true, maxDepth: 100 });
  assert.equal((r.result as { pages: number }).pages, want.emitted.size, 'the counters carried over through the checkpoint');
  assertOnePerPage(site, await storedResults(c, 'site'));
  const twice = [...site.hits].filter(([p, n]) => p.startsWith('/p/') && n > 1).length;
  t.diagnostic(`pages fetched twice after the SIGKILL: ${twice} of ${want.emitted.size}`);
  assert.ok(twice < want.emitted.size / 2, `resumed from the checkpoint, not from scratch (${twice} refetched)`);
  assertRate(site);
});
