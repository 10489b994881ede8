// The crawl kind against the 50-host loopback site (test/fixtures/multisite.ts),
// through a fake TaskContext: every reachable allowed page once, and
// politeness judged from each server's own request log.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Json, TaskContext } from '#kinds/api.js';
import { crawl } from '#actors/worker/kinds/crawl/index.js';
import { startMultiSite, type Request } from '../fixtures/multisite.js';
import { maxInWindow } from '../fixtures/windows.js';


const RPS = 10;
const PER_HOST = 2;
const CRAWL_DELAY = 0.25;

test('50 hosts: every reachable allowed page once, each host polite, 429s waited out and fetched again, the dead host parked', { timeout: 120_000 }, async (t) => {
  const site = await startMultiSite({ pages: 2000, crawlDelay: CRAWL_DELAY });
  try {
    const emitted: string[] = [];
    const progress: Json[] = [];
    const warnings: unknown[] = [];
    const ctx: TaskContext = {
      resource: { name: 'crawl-multihost', id: 'r1' },
      spec: {
        seeds: [site.seed], sameHost: false, maxDepth: 100, maxPages: 100_000, perHostRps: RPS, perHostConcurrency: PER_HOST,
        concurrency: 32, timeoutMs: 1500, parkAfter: 3, backoffMs: 500, maxRetries: 5,
      } as { [k: string]: Json },
      signal: new AbortController().signal,
      log: { debug: () => {}, info: () => {}, warn: (o: unknown) => void warnings.push(o), error: (o: unknown) => void warnings.push(o) },
      attempt: 1,
      checkpointed: undefined,
      checkpoint: async () => {},
      progress: (v) => void progress.push(v),
      emit: async (_item, o) => void emitted.push(o!.id!),
      shard: { index: 0, count: 1 }, send: async () => {}, inbox: { async *[Symbol.asyncIterator]() {} }, busy: () => () => {},
    };
    const started = performance.now();
    const result = (await crawl.run(ctx)) as { pages: number; errors: number; skipped: number; parked: string[] };
    const secs = (performance.now() - started) / 1000;
    t.diagnostic(`${result.pages} pages in ${secs.toFixed(1)} s (${(result.pages / secs).toFixed(0)} pages/s), ${site.log.length} requests`);

    // The host that never answers is parked, and the crawl went on without it.
    assert.deepEqual(result.parked, [site.hosts[site.hung]]);
    assert.deepEqual((progress.at(-1) as { parked: string[] }).parked, result.parked);
    const hungRequests = site.log.filter((r) => r.host === site.hung);
    assert.ok(hungRequests.length <= 3, `${hungRequests.length} requests to the hung host`);

    // Every reachable allowed page exactly once: emitted once, answered 200 once.
    const want = site.reachable();
    assert.equal(new Set(emitted).size, emitted.length, 'a page was emitted twice');
    assert.deepEqual(new Set(emitted), want);
    assert.equal(result.pages, want.size);
    const ok = new Map<string, number>();
    for (const r of site.log) if (r.status === 200 && r.path !== '/robots.txt') ok.set(`${r.host} ${r.path}`, (ok.get(`${r.host} ${r.path}`) ?? 0) + 1);
    for (const [k, n] of ok) assert.equal(n, 1, `${k} answered 200 ${n} times`);
    assert.equal(ok.size, want.size);
    for (const h of site.disallowing) {
      assert.deepEqual(site.log.filter((r) => r.host === h && r.path.startsWith('/private/')), [], `host ${h} asked for a disallowed path`);
    }

    // Politeness per host, from each server's own log.
    const byHost = new Map<number, Request[]>();
    for (const r of site.log) byHost.set(r.host, [...(byHost.get(r.host) ?? []), r]);
    let busiest = 0;
    for (const [h, rs] of byHost) {
      const times = rs.map((r) => r.at);
      const worst = maxInWindow(times, 1000);
      assert.ok(worst <= RPS, `host ${h}: ${worst} requests within one second`);
      busiest = Math.max(busiest, worst);
      if (site.delayed.includes(h)) {
        const sorted = [...times].sort((a, b) => a - b);
        for (let i = 1; i < sorted.length; i++) {
          assert.ok(sorted[i]! - sorted[i - 1]! >= CRAWL_DELAY * 1000, `host ${h}: ${(sorted[i]! - sorted[i - 1]!).toFixed(1)} ms between requests under Crawl-delay ${CRAWL_DELAY}`);
        }
      }
    }
    assert.equal(busiest, RPS, 'no host reached its limit, so the window check had no teeth');

    // 429s: nothing sent after one was seen until its Retry-After ran out
    // (only requests already on their way may arrive meanwhile), and every
    // URL answered 429 or 503 was fetched again until it got its page.
    const throttles = site.log.filter((r) => (r.status === 429 && !r.early) || r.status === 503);
    const early = site.log.filter((r) => r.early);
    t.diagnostic(`${throttles.length} 429/503 answers, ${early.length} requests arrived inside a Retry-After`);
    assert.ok(throttles.filter((r) => r.status === 429).length >= 4, 'too few 429s to judge');
    assert.ok(early.length <= (PER_HOST - 1) * throttles.length, `${early.length} requests inside a Retry-After`);
    for (const r of [...throttles, ...early]) assert.equal(ok.get(`${r.host} ${r.path}`), 1, `host ${r.host} ${r.path}: answered ${r.status}, never fetched again`);
  } finally {
    await site.close();
  }
});

test('sitemaps: true reads the seed host\'s robots.txt Sitemap line, follows the index, and crawls the pages only it lists', async () => {
  const site = await startMultiSite({ hosts: 5, pages: 60, throttled: [], unavailable: [], hang: false, crawlDelay: 0, sitemap: true });
  try {
    const runWith = async (sitemaps: boolean): Promise<string[]> => {
      const emitted: string[] = [];
      const ctx: TaskContext = {
        resource: { name: 'crawl-sitemaps', id: 'r1' },
        spec: { seeds: [site.seed], sameHost: false, maxDepth: 100, perHostRps: 1e6, concurrency: 8, sitemaps } as { [k: string]: Json },
        signal: new AbortController().signal,
        log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
        attempt: 1,
        checkpointed: undefined,
        checkpoint: async () => {},
        progress: () => {},
        emit: async (_item, o) => void emitted.push(o!.id!),
        shard: { index: 0, count: 1 }, send: async () => {}, inbox: { async *[Symbol.asyncIterator]() {} }, busy: () => () => {},
      };
      await crawl.run(ctx);
      return emitted;
    };
    const without = await runWith(false);
    for (const o of site.orphans) assert.ok(!without.includes(o), `${o} crawled without sitemaps`);
    const withMaps = new Set(await runWith(true));
    for (const o of site.orphans) assert.ok(withMaps.has(o), `${o} not crawled from the sitemap`);
    assert.equal(withMaps.size, site.reachable().size + site.orphans.length);
  } finally {
    await site.close();
  }
});
