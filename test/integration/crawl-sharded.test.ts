// The sharded crawl (spec.shards: 3) through a real cluster (nats-server
// with JetStream, etcd, gaffer masters and 3 workers) against the 50-host
// loopback site (test/fixtures/multisite.ts):
// - without faults: every reachable allowed page fetched exactly once (with
//   shards a loaded machine made run again: at most 1% twice per run again,
//   and counters from the last checkpoint), every result stored once, each
//   host's requests within its limit in every 1 s
//   window across the whole cluster, Crawl-delay held, nothing sent to a 429
//   host inside its Retry-After, the other hosts not slowed by it, and the
//   shards' etcd checkpoints a few hundred bytes all along (no per-URL state);
// - a shard's worker SIGKILLed mid-crawl: the crawl completes, at most 1% of
//   pages fetched twice, every result once, politeness held across the move;
// - a shard's worker SIGSTOPped past its lease and resumed: nothing it built
//   before the pause is stored after it resumed, and the crawl is exact;
// - maxPages over 3 shards: never exceeded.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, rawConnect, Recorder, waitFor } from '../harness.js';
import { startMultiSite, type MultiSite, type Request } from '../fixtures/multisite.js';
import { maxInWindow } from '../fixtures/windows.js';
import { readResults } from '#platform/nats/results.js';
import { EtcdStore } from '#platform/etcd/store.js';
import { keys } from '#protocol/keys.js';
import type { GafferClient } from '#client/client.js';
import type { LocalCluster } from '#devcluster/cluster.js';
import type { Resource } from '#protocol/messages.js';
import { gaffer } from '../cli-runner.js';

const RPS = 10;
const PER_HOST = 2;
const CRAWL_DELAY = 0.25;
const SHARDS = 3;

function spec(site: MultiSite, extra: Record<string, unknown> = {}) {
  return {
    kind: 'crawl', shards: SHARDS, seeds: [site.seed], sameHost: false, maxDepth: 100, maxPages: 1_000_000,
    perHostRps: RPS, perHostConcurrency: PER_HOST, concurrency: 32, timeoutMs: 1500, parkAfter: 3, backoffMs: 500, maxRetries: 5,
    restart: { attempts: 5, delayMs: 200, maxDelayMs: 1000 },
    ...extra,
  };
}

async function completed(client: GafferClient, name: string, timeoutMs = 150_000): Promise<Resource> {
  return waitFor(`${name} to complete`, async () => {
    const r = await client.get(name);
    if (r.state === 'failed') throw new Error(`${name} failed: ${r.error}`);
    return r.state === 'completed' ? r : undefined;
  }, timeoutMs, 250);
}

interface Stored { id: string; at: number; url: string; fetchedAt: number }

async function storedResults(c: LocalCluster, name: string): Promise<Stored[]> {
  const nc = await rawConnect(c.natsUrl);
  const out: Stored[] = [];
  for await (const r of readResults(nc, name)) {
    const item = r.item as { url: string; fetchedAt: string };
    out.push({ id: r.id, at: Date.parse(r.at), url: item.url, fetchedAt: Date.parse(item.fetchedAt) });
  }
  await nc.close();
  return out;
}

/** assertPolite judges the servers' own logs: the per-host rate, Crawl-delay, and Retry-After. */
function assertPolite(site: MultiSite, t: { diagnostic(s: string): void }): void {
  const byHost = new Map<number, Request[]>();
  for (const r of site.log) byHost.set(r.host, [...(byHost.get(r.host) ?? []), r]);
  for (const [h, rs] of byHost) {
    const times = rs.map((r) => r.at);
    const worst = maxInWindow(times, 1000);
    assert.ok(worst <= RPS, `host ${h}: ${worst} requests within one second across the cluster`);
    if (site.delayed.includes(h)) {
      const sorted = [...times].sort((a, b) => a - b);
      for (let i = 1; i < sorted.length; i++) {
        assert.ok(sorted[i]! - sorted[i - 1]! >= CRAWL_DELAY * 1000, `host ${h}: ${(sorted[i]! - sorted[i - 1]!).toFixed(1)} ms between requests under Crawl-delay ${CRAWL_DELAY}`);
      }
    }
  }
  const throttles = site.log.filter((r) => (r.status === 429 && !r.early) || r.status === 503);
  const early = site.log.filter((r) => r.early);
  t.diagnostic(`${throttles.length} 429/503 answers, ${early.length} requests arrived inside a Retry-After`);
  assert.ok(early.length <= (PER_HOST - 1) * throttles.length, `${early.length} requests inside a Retry-After`);
}

/** okCounts counts the 200 answers per page (robots.txt aside). */
function okCounts(site: MultiSite): Map<string, number> {
  const ok = new Map<string, number>();
  for (const r of site.log) if (r.status === 200 && r.path !== '/robots.txt') ok.set(`http://${site.hosts[r.host]}${r.path}`, (ok.get(`http://${site.hosts[r.host]}${r.path}`) ?? 0) + 1);
  return ok;
}

function assertEveryResultOnce(site: MultiSite, stored: Stored[]): void {
  const ids = stored.map((s) => s.id);
  assert.equal(new Set(ids).size, ids.length, 'a result was stored twice');
  const urls = stored.map((s) => s.url);
  assert.equal(new Set(urls).size, urls.length, 'a page has two results');
  assert.deepEqual(new Set(urls), site.reachable(), 'one result for every reachable allowed page');
}

/** missing says which reachable pages have no result, by host, and whether the site was ever asked for them (to tell a lost link from a page never queued). */
function missing(site: MultiSite, want: Set<string>, stored: Stored[]): string {
  const got = new Set(stored.map((s) => s.url));
  const lost = [...want].filter((u) => !got.has(u));
  if (lost.length === 0) return 'no reachable page is missing';
  const asked = new Set(site.log.map((x) => `${site.hosts[x.host]}${x.path}`));
  const byHost = new Map<string, { n: number; asked: number }>();
  for (const u of lost) {
    const url = new URL(u);
    const e = byHost.get(url.host) ?? { n: 0, asked: 0 };
    e.n++;
    if (asked.has(`${url.host}${url.pathname}`)) e.asked++;
    byHost.set(url.host, e);
  }
  return `${lost.length} reachable pages missing, by host (missing/asked for): ${[...byHost].map(([h, e]) => `${h} ${e.n}/${e.asked}`).join(', ')}; e.g. ${lost.slice(0, 3).join(' ')}`;
}

/** CRAWL_SHARDED_ONLY=<text> runs only the parts whose names contain it (while working on one). */
const only = process.env.CRAWL_SHARDED_ONLY;
const part = (name: string) => ({ skip: only !== undefined && !name.includes(only) });

const sum = (r: Resource, k: string): number =>
  ((r.result as { shards: Array<Record<string, number> | null> }).shards).reduce((n, s) => n + (s?.[k] ?? 0), 0);

test('sharded crawl: 3 shards on 3 workers over the 50-host site', { timeout: 600_000 }, async (t) => {
  const c = await cluster({ masters: 2, workers: 3, ttlSeconds: 2 });
  await c.ready(3);
  const client = await c.client();
  const store = await EtcdStore.connect(c.etcdEndpoints.split(','), { timeoutMs: 3000 });
  t.after(() => store.close());
  const checkpointSizes = async (name: string): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < SHARDS; i++) {
      const kv = (await store.range(keys.checkpoint(`${name}/${i}`))).kvs[0];
      out.push(kv ? kv.value.length : 0);
    }
    return out;
  };

  await t.test('without faults: every page once, every result once, polite cluster-wide, small constant checkpoints', part('without faults: every page once, every result once, polite cluster-wide, small constant checkpoints'), async () => {
    const site = await startMultiSite({ pages: 3000, crawlDelay: CRAWL_DELAY });
    try {
      const starts = await Recorder.start<{ name: string; attempt: number }>(c.natsUrl, 'events.task.started');
      const started = Date.now();
      await client.add('sharded', spec(site));
      const sizes: number[] = [];
      const sampler = setInterval(() => void checkpointSizes('sharded').then((s) => sizes.push(...s), () => {}), 1000);
      let r: Resource;
      try {
        r = await completed(client, 'sharded');
      } finally {
        clearInterval(sampler);
      }
      sizes.push(...(await checkpointSizes('sharded')));
      const secs = (Date.now() - started) / 1000;
      const want = site.reachable();
      t.diagnostic(`${want.size} pages in ${secs.toFixed(1)} s (${(want.size / secs).toFixed(0)} pages/s, limit ${RPS}/s x ${site.hosts.length - 1} hosts), ${site.log.length} requests`);
      t.diagnostic(`shard checkpoints: at most ${Math.max(...sizes)} B over ${sizes.length} samples`);
      t.diagnostic(`result: ${JSON.stringify(r.result)}`);
      const stored = await storedResults(c, 'sharded');
      t.diagnostic(missing(site, want, stored));
      assertEveryResultOnce(site, stored);
      // A loaded machine can stall a worker past its 2 s lease: it fences
      // itself and, the lease restored, runs its shard again (the same attempt),
      // from the shard's last checkpoint. The counters then restart from there
      // (README: at most 5 s old), so only a crawl whose shards each started
      // once is held to exact counters; the results above are exact either way.
      const runs = starts.items.filter((e) => e.data.name.startsWith('sharded/')).length;
      const once = runs === SHARDS;
      t.diagnostic(`shard runs: ${runs}${once ? '' : ` (started again after a fence or a move: counters ${sum(r, 'pages')} for ${want.size} pages)`}`);
      // `gaffer crawl` shows the same numbers, per shard and combined.
      const cli = await gaffer(['--nats', c.natsUrl, 'crawl', 'sharded', '--json']);
      assert.equal(cli.code, 0, cli.stderr);
      const view = JSON.parse(cli.stdout) as { shards: unknown[]; combined: { fetched: number; parked: string[] } };
      assert.equal(view.shards.length, SHARDS);
      if (once) assert.equal(view.combined.fetched, want.size);
      assert.deepEqual(view.combined.parked, [site.hosts[site.hung]]);
      const human = await gaffer(['--nats', c.natsUrl, 'crawl', 'sharded']);
      t.diagnostic(`gaffer crawl sharded:\n${human.stdout}`);
      const ok = okCounts(site);
      // A shard run again fetches again what it had fetched and not yet acknowledged when it stopped (as after a move: at most 1% each time).
      if (once) for (const [k, n] of ok) assert.equal(n, 1, `${k} answered 200 ${n} times`);
      else {
        const twice = [...ok.values()].filter((n) => n > 1).length;
        t.diagnostic(`pages fetched twice: ${twice}`);
        assert.ok(twice <= ((runs - SHARDS) * want.size) / 100, `${twice} pages fetched twice over ${runs - SHARDS} runs again`);
      }
      assert.equal(ok.size, want.size);
      for (const h of site.disallowing) {
        assert.deepEqual(site.log.filter((x) => x.host === h && x.path.startsWith('/private/')), [], `host ${h} asked for a disallowed path`);
      }
      assertPolite(site, t);
      if (once) assert.equal(sum(r, 'pages'), want.size, 'the shards\' results add up to the pages');
      const parked = (r.result as { shards: Array<{ parked: string[] } | null> }).shards.flatMap((s) => s?.parked ?? []);
      assert.deepEqual(parked, [site.hosts[site.hung]], 'the host that never answers is parked, by one shard');
      t.diagnostic(`duplicates dropped at the receiver: ${sum(r, 'duplicates')} (senders send each link once per attempt, and the queue's duplicate window drops the rest)`);
      // No per-URL state in etcd: the checkpoints stay small whatever the crawl's size.
      assert.ok(sizes.length >= SHARDS && Math.max(...sizes) < 2048, `checkpoints up to ${Math.max(...sizes)} B`);
      // The 429 hosts did not hold up the others: while one waited out a Retry-After, the other hosts were being fetched.
      const blocks = site.log.filter((x) => x.status === 429 && !x.early && x.until !== undefined);
      const busy = blocks.filter((b) => site.log.some((x) => x.host !== b.host && !site.delayed.includes(x.host) && x.at > b.at && x.at < b.until!));
      t.diagnostic(`${busy.length} of ${blocks.length} Retry-After waits saw other hosts fetched meanwhile`);
      assert.ok(blocks.length >= 4 && busy.length >= 0.8 * blocks.length, `${busy.length} of ${blocks.length}`);
    } finally {
      await site.close();
    }
  });

  await t.test("a shard's worker SIGKILLed mid-crawl: it completes, <= 1% fetched twice, every result once, still polite", part("a shard's worker SIGKILLed mid-crawl: it completes, <= 1% fetched twice, every result once, still polite"), async () => {
    const site = await startMultiSite({ pages: 6000, crawlDelay: CRAWL_DELAY });
    try {
      await client.add('killed', spec(site));
      const want = site.reachable();
      const before = await waitFor('a third of the pages', async () => {
        const r = await client.get('killed');
        return okCounts(site).size >= want.size / 3 && r.shards?.[1]?.worker ? r : undefined;
      }, 120_000, 100);
      // While it runs, `gaffer crawl` also counts what waits in each shard's queue.
      const live = JSON.parse((await gaffer(['--nats', c.natsUrl, 'crawl', 'killed', '--json'])).stdout) as { state: string; shards: Array<{ backlog: number | null }> };
      assert.equal(live.state, 'running');
      assert.ok(live.shards.every((s) => typeof s.backlog === 'number'), JSON.stringify(live.shards));
      const victim = before.shards![1]!.worker!;
      await c.workers.get(victim)!.kill();
      const killedAt = Date.now();
      const r = await completed(client, 'killed');
      t.diagnostic(`kill to completed: ${Date.now() - killedAt} ms; shard 1 attempt ${before.shards![1]!.attempt} -> ${r.shards![1]!.attempt}`);
      assert.ok(r.shards![1]!.attempt > before.shards![1]!.attempt, 'shard 1 ran again elsewhere');
      assertEveryResultOnce(site, await storedResults(c, 'killed'));
      const ok = okCounts(site);
      assert.equal(ok.size, want.size);
      const twice = [...ok.values()].filter((n) => n > 1).length;
      t.diagnostic(`pages fetched twice: ${twice} of ${want.size}`);
      assert.ok(twice <= want.size / 100, `${twice} pages fetched twice`);
      assertPolite(site, t);
      c.startWorker(victim);
      await c.ready(3);
    } finally {
      await site.close();
    }
  });

  await t.test("a shard's worker SIGSTOPped past its lease, then resumed: nothing of its old attempt is stored after, the crawl is exact", part("a shard's worker SIGSTOPped past its lease, then resumed: nothing of its old attempt is stored after, the crawl is exact"), async () => {
    const site = await startMultiSite({ pages: 6000, crawlDelay: CRAWL_DELAY });
    try {
      await client.add('paused', spec(site));
      const want = site.reachable();
      const before = await waitFor('a third of the pages', async () => {
        const r = await client.get('paused');
        return okCounts(site).size >= want.size / 3 && r.shards?.[2]?.state === 'running' ? r : undefined;
      }, 120_000, 100);
      const victim = before.shards![2]!.worker!;
      const w = c.workers.get(victim)!;
      w.pause();
      const pausedAt = Date.now();
      try {
        await waitFor('shard 2 to move', async () => {
          const s = (await client.get('paused')).shards![2]!;
          return s.worker !== victim && s.attempt > before.shards![2]!.attempt;
        }, 60_000);
      } finally {
        w.resume();
      }
      const resumedAt = Date.now();
      const r = await completed(client, 'paused');
      const stored = await storedResults(c, 'paused');
      assertEveryResultOnce(site, stored);
      // Built before the pause (so by the paused worker or before it), stored after it resumed: only a fenced attempt could.
      const late = stored.filter((s) => s.fetchedAt < pausedAt && s.at >= resumedAt);
      assert.deepEqual(late, [], 'results of the paused attempt stored after it resumed');
      const twice = [...okCounts(site).values()].filter((n) => n > 1).length;
      t.diagnostic(`pause to resume ${resumedAt - pausedAt} ms; pages fetched twice: ${twice} of ${want.size}; ${JSON.stringify(r.shards!.map((s) => s.attempt))}`);
      assert.ok(twice <= want.size / 100, `${twice} pages fetched twice`);
      assertPolite(site, t);
    } finally {
      await site.close();
    }
  });

  await t.test('maxPages over 3 shards is never exceeded', part('maxPages over 3 shards is never exceeded'), async () => {
    const site = await startMultiSite({ pages: 2000, crawlDelay: 0, throttled: [], unavailable: [], hang: false });
    try {
      await client.add('capped', spec(site, { maxPages: 500, perHostRps: 50 }));
      const r = await completed(client, 'capped');
      const stored = await storedResults(c, 'capped');
      const fetched = site.log.filter((x) => x.path !== '/robots.txt').length;
      t.diagnostic(`maxPages 500: ${stored.length} results, ${fetched} page requests, result pages ${sum(r, 'pages')}`);
      assert.ok(fetched <= 500, `${fetched} pages fetched`);
      assert.ok(stored.length <= 500);
      assert.ok(stored.length >= 400, 'the shares were mostly used');
    } finally {
      await site.close();
    }
  });
});
