// Conditional recrawls through a real cluster (nats-server with JetStream,
// etcd, a master and a worker): a scheduled crawl of a 1,000-page site runs
// once, 10% of the pages change, and the second run asks every page with
// If-None-Match / If-Modified-Since from what the first run kept in the task
// store (JetStream KV, not etcd). It must emit exactly the changed pages (in
// run 2), count the other 900 as notModified, and still reach every page: the
// links of a 304 page come from what was remembered.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, rawConnect, waitFor } from '../harness.js';
import { startSite } from '../fixtures/site.js';
import { expect } from '../fixtures/crawl-expect.js';
import { readResults } from '#platform/nats/results.js';
import { TASK_STATE_STREAM } from '#platform/nats/task-state.js';
import type { GafferClient } from '#client/client.js';
import type { Resource } from '#protocol/messages.js';

const PAGES = 1000;

const pathOf = (url: string): string => new URL(url).pathname;

async function runEnded(client: GafferClient, name: string, run: number): Promise<NonNullable<Resource['runs']>[number]> {
  return waitFor(`run ${run} of ${name} to end`, async () => {
    const r = await client.get(name);
    const x = r.runs?.find((y) => y.run === run);
    if (x && x.state !== 'completed') throw new Error(`run ${run} ended ${x.state}: ${x.error ?? ''}`);
    return x;
  }, 120_000, 200);
}

test('recrawl: the second run of a scheduled 1,000-page crawl emits exactly the 10% that changed and counts the rest as not modified', async (t) => {
  const site = await startSite({ pages: PAGES, bad: false, padBytes: 500 });
  t.after(() => site.close());
  const c = await cluster({ masters: 1, workers: 1, ttlSeconds: 2 });
  await c.ready(1);
  const client = await c.client();
  const nc = await rawConnect(c.natsUrl);
  const exp = expect(site, { robots: true, maxDepth: 100 });
  const want = exp.emitted;
  assert.equal(want.size, PAGES);

  // Paused, so the two runs are the two triggers below and nothing else.
  await client.add('nightly', {
    kind: 'crawl', seeds: [site.seed], maxDepth: 100, maxPages: 10_000,
    perHostRps: 500, perHostConcurrency: 8, concurrency: 8, timeoutMs: 5000,
    schedule: { every: '24h', paused: true },
  });

  await client.schedule('trigger', { name: 'nightly' });
  const run1 = await runEnded(client, 'nightly', 1);
  assert.deepEqual(run1.result, { pages: PAGES, errors: 0, skipped: exp.skipped.size, parked: [], notModified: 0 });
  assert.equal(site.notModified.size, 0, 'the first run asks nothing conditionally');
  const jsm = await nc.jetstreamManager();
  const kept = (await jsm.streams.info(TASK_STATE_STREAM)).state;
  assert.equal(kept.messages, PAGES, 'one remembered entry per page, in JetStream');
  t.diagnostic(`remembered: ${kept.messages} pages in ${kept.bytes} B of stream (${Math.round(kept.bytes / kept.messages)} B per page)`);

  // 10% of the pages change between the runs, spread over the whole tree.
  const changed = new Set([...want].filter((_, i) => i % 10 === 3));
  assert.equal(changed.size, PAGES / 10);
  site.change(changed);
  const hitsBefore = new Map(site.hits);

  await client.schedule('trigger', { name: 'nightly' });
  const run2 = await runEnded(client, 'nightly', 2);
  // Links refused (robots.txt, other hosts) are found again through the remembered links: skipped as before.
  assert.deepEqual(run2.result, { pages: changed.size, errors: 0, skipped: exp.skipped.size, parked: [], notModified: PAGES - changed.size });

  // Every page was asked for again, once; the unchanged ones answered 304.
  for (const path of want) {
    assert.equal((site.hits.get(path) ?? 0) - (hitsBefore.get(path) ?? 0), 1, `${path} fetched once in run 2`);
    assert.equal(site.notModified.get(path) ?? 0, changed.has(path) ? 0 : 1, `${path}: 304 only if unchanged`);
  }

  const stored: Array<{ run?: number; url: string }> = [];
  for await (const r of readResults(nc, 'nightly', { run: 2 })) stored.push({ run: r.run, url: (r.item as { url: string }).url });
  assert.equal(stored.length, changed.size, 'run 2 stored one result per changed page and nothing else');
  assert.deepEqual(new Set(stored.map((s) => pathOf(s.url))), changed);
  assert.ok(stored.every((s) => s.run === 2));
  let all = 0;
  for await (const _ of readResults(nc, 'nightly')) all++;
  assert.equal(all, PAGES + changed.size, 'run 1 kept its 1,000 results');
  const took = (x: typeof run1): number => Date.parse(x.endedAt ?? '') - Date.parse(x.startedAt ?? '');
  t.diagnostic(`run 1: ${took(run1)} ms for ${PAGES} pages; run 2: ${took(run2)} ms (${changed.size} changed, ${PAGES - changed.size} not modified)`);
  const after2 = (await jsm.streams.info(TASK_STATE_STREAM)).state;
  assert.equal(after2.messages, PAGES, 'a changed page replaces its entry (one value per key)');
});
