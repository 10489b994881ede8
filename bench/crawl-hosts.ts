// The one-worker crawl over the 50-host loopback site (test/fixtures/multisite.ts)
// as issue 20 measured it: 20,000 pages, cross-host links, perHostRps 20,
// 32 requests in flight, sameHost false, no Crawl-delay host, no 429s, no
// dead host. The crawl kind runs in this process on a fake TaskContext
// whose emit stores nothing, so the figure is the crawl's own scheduling and
// fetching, not JetStream's; the per-host limits allow hosts x perHostRps
// pages/s (1,000 here).
//   node dist/bench/crawl-hosts.js [pages] [kind module]
// The optional kind module (an index.js exporting `crawl`) lets the same
// harness time another build of the crawl, e.g. an older commit's.

import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { Json, TaskContext, TaskKind } from '#kinds/api.js';
import { startMultiSite } from '#test/fixtures/multisite.js';

const pages = Number(process.argv[2] ?? 20_000);
const kindPath = process.argv[3];
const RPS = 20;
const HOSTS = 50;

const { crawl } = (await import(kindPath ? pathToFileURL(kindPath).href : '#actors/worker/kinds/crawl/index.js')) as { crawl: TaskKind };
const site = await startMultiSite({ hosts: HOSTS, pages, crawlDelay: 0, throttled: [], unavailable: [], hang: false });
let emitted = 0;
const ctx: TaskContext = {
  resource: { name: 'crawl-hosts', id: 'r1' },
  spec: { seeds: [site.seed], sameHost: false, maxDepth: 1000, maxPages: 10 * pages, perHostRps: RPS, concurrency: 32 } as { [k: string]: Json },
  signal: new AbortController().signal,
  log: { debug: () => {}, info: () => {}, warn: (o: unknown, m?: string) => console.error('warn', m, JSON.stringify(o)), error: (o: unknown) => console.error('error', JSON.stringify(o)) },
  attempt: 1,
  checkpointed: undefined,
  checkpoint: async () => {},
  progress: () => {},
  emit: async () => void emitted++,
  shard: { index: 0, count: 1 }, send: async () => {}, inbox: { async *[Symbol.asyncIterator]() {} }, busy: () => () => {},
};
const t0 = performance.now();
const result = (await crawl.run(ctx)) as { pages: number };
const seconds = (performance.now() - t0) / 1000;
await site.close();
const reachable = site.reachable().size;
console.log(JSON.stringify({
  pages: result.pages,
  reachable,
  emitted,
  seconds: Math.round(seconds * 10) / 10,
  pagesPerSecond: Math.round(result.pages / seconds),
  limit: HOSTS * RPS,
  ofLimit: `${Math.round((100 * result.pages) / seconds / (HOSTS * RPS))}%`,
  requests: site.log.length,
}));
