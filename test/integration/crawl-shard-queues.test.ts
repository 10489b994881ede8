// The sharded crawl (actors/worker/kinds/crawl/sharded.ts) in one process,
// against the loopback multi-host site, with in-memory shard queues that
// behave as the JetStream ones do for a kind (ids deduped, an item stays
// until acknowledged, held items go back, flagged redelivered, when their
// shard stops) and a done check of "every queue empty, nothing held, every
// shard waiting on its inbox". Two things the cluster test cannot force:
// - a tiny holding window with a slow host (Crawl-delay): the slow host's
//   items are deferred to the back of the queue and every page is still
//   fetched exactly once;
// - a shard stopped midway and started again from its checkpoint and task
//   store: what it held comes back redelivered and is fetched (not taken for
//   a duplicate), the seen-set is reloaded from its deltas, and every page
//   is emitted;
// - hosts that fail for a while (robots.txt answered 500, pages that time
//   out once, as under load or a pause of the worker): their pages are
//   asked again, not dropped, and every page is emitted with no error;
// - a queue that loses items it had stored, or delivers some to the wrong
//   shard (as nats-server 2.9.10 after a stream reset has): their senders
//   get no receipt, stay busy, send them again, and every page is fetched
//   and emitted once, by the owner of its host.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { InboxItem, Json, TaskContext, TaskStore } from '#kinds/api.js';
import { ShardedCrawl } from '#actors/worker/kinds/crawl/sharded.js';
import { parseSpec } from '#actors/worker/kinds/crawl/spec.js';
import { startMultiSite, type MultiSite } from '../fixtures/multisite.js';

interface Msg { id: string; item: Json; deliveries: number }

/** MemQueues: one queue per shard, ids deduped for the whole run, held items per shard. */
class MemQueues {
  readonly queues: Msg[][];
  readonly held: Array<Set<Msg>>;
  readonly waiting: boolean[];
  /** Busy marks each shard holds (ctx.busy). */
  readonly busy: number[];
  /** Of the items stored, every `loseEvery`-th is lost (never delivered), up to `loseUpTo` in all. */
  loseEvery = 0;
  loseUpTo = 0;
  lost = 0;
  /** Of the items stored, every `misdeliverEvery`-th goes to the next shard's queue instead. */
  misdeliverEvery = 0;
  private stored = 0;
  private readonly ids = new Set<string>();
  private readonly wakers: Array<(() => void) | undefined>;

  constructor(readonly count: number) {
    this.queues = Array.from({ length: count }, () => []);
    this.held = Array.from({ length: count }, () => new Set());
    this.waiting = Array.from({ length: count }, () => false);
    this.busy = Array.from({ length: count }, () => 0);
    this.wakers = Array.from({ length: count }, () => undefined);
  }

  send(index: number, item: Json, id: string): void {
    if (this.ids.has(id)) return;
    this.ids.add(id);
    this.stored++;
    if (this.loseEvery > 0 && this.stored % this.loseEvery === 1 && this.lost < this.loseUpTo) {
      this.lost++;
      return;
    }
    if (this.misdeliverEvery > 0 && this.stored % this.misdeliverEvery === 2) index = (index + 1) % this.count;
    this.queues[index]!.push({ id, item, deliveries: 0 });
    this.wakers[index]?.();
  }

  inbox(index: number, signal: AbortSignal): AsyncIterable<InboxItem> {
    return {
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<InboxItem>> => {
          while (this.queues[index]!.length === 0) {
            if (signal.aborted) return { done: true, value: undefined };
            this.waiting[index] = true;
            await new Promise<void>((resolve) => {
              this.wakers[index] = resolve;
              signal.addEventListener('abort', () => resolve(), { once: true });
            });
            this.waiting[index] = false;
          }
          if (signal.aborted) return { done: true, value: undefined };
          const msg = this.queues[index]!.shift()!;
          msg.deliveries++;
          this.held[index]!.add(msg);
          return { done: false, value: { item: msg.item, redelivered: msg.deliveries > 1, ack: async () => void this.held[index]!.delete(msg) } };
        },
      }),
    };
  }

  /** giveBack puts what a stopped shard held back at the front of its queue (a nak). */
  giveBack(index: number): number {
    const back = [...this.held[index]!];
    this.held[index]!.clear();
    this.queues[index]!.unshift(...back);
    return back.length;
  }

  /** markBusy is shard `index`'s ctx.busy. */
  markBusy(index: number): () => void {
    this.busy[index]!++;
    let given = false;
    return () => {
      if (!given) this.busy[index]!--;
      given = true;
    };
  }

  done(): boolean {
    return this.queues.every((q) => q.length === 0) && this.held.every((h) => h.size === 0) && this.busy.every((n) => n === 0) && this.waiting.every(Boolean);
  }
}

/** MemStore is one shard's keys; its siblings' are read through getShard. */
class MemStore implements TaskStore {
  readonly kv = new Map<string, Json>();
  siblings: MemStore[] = [this];
  /** stores makes `n` stores that read each other's keys. */
  static linked(n: number): MemStore[] {
    const out = Array.from({ length: n }, () => new MemStore());
    for (const s of out) s.siblings = out;
    return out;
  }
  async getShard(index: number, key: string): Promise<Json | undefined> {
    return this.siblings[index]?.kv.get(key);
  }
  async get(key: string): Promise<Json | undefined> {
    return this.kv.get(key);
  }
  async put(key: string, value: Json): Promise<void> {
    this.kv.set(key, value);
  }
  async delete(key: string): Promise<void> {
    this.kv.delete(key);
  }
}

interface Shard { run: Promise<Json>; stop: AbortController; checkpointed: Json | undefined }

function startShard(q: MemQueues, index: number, specJson: { [k: string]: Json }, store: MemStore, emitted: string[], opts: { attempt: number; checkpointed?: Json; limits?: { window: number; hostCap: number; resendMs?: number } }): Shard {
  const stop = new AbortController();
  const shard: Shard = { run: Promise.resolve(null), stop, checkpointed: opts.checkpointed };
  const ctx: TaskContext = {
    resource: { name: `crawl/${index}`, id: `r1_s${index}` },
    spec: specJson,
    signal: stop.signal,
    log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
    attempt: opts.attempt,
    checkpointed: opts.checkpointed,
    checkpoint: async (s) => void (shard.checkpointed = s),
    progress: () => {},
    emit: async (item) => void emitted.push((item as { url: string }).url),
    shard: { index, count: q.count },
    send: async (to, item, o) => q.send(to, item, o!.id!),
    inbox: q.inbox(index, stop.signal),
    // A stopped attempt's marks go with it, as a worker's do.
    busy: () => {
      const give = q.markBusy(index);
      stop.signal.addEventListener('abort', give, { once: true });
      return give;
    },
    store,
  };
  shard.run = new ShardedCrawl(ctx, parseSpec(specJson), opts.limits).run() as Promise<Json>;
  return shard;
}

async function untilDone(q: MemQueues, shards: Shard[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // A shard that fails stops taking its inbox: say why instead of waiting for the deadline.
  const failed = Promise.race(shards.map((s) => s.run.then(() => new Promise<never>(() => {}))));
  // Done must hold twice, 100 ms apart: a shard between an ack and its next read is not waiting yet.
  let seen = 0;
  while (seen < 2) {
    if (Date.now() > deadline) throw new Error(`not done: ${JSON.stringify(q.queues.map((x) => x.length))} queued, ${JSON.stringify(q.held.map((h) => h.size))} held, ${JSON.stringify(q.busy)} busy`);
    await Promise.race([new Promise((r) => setTimeout(r, 100)), failed]);
    seen = q.done() ? seen + 1 : 0;
  }
  for (const s of shards) s.stop.abort();
}

function okCounts(site: MultiSite): Map<string, number> {
  const ok = new Map<string, number>();
  for (const r of site.log) if (r.status === 200 && r.path !== '/robots.txt') ok.set(`http://${site.hosts[r.host]}${r.path}`, (ok.get(`http://${site.hosts[r.host]}${r.path}`) ?? 0) + 1);
  return ok;
}

test('a tiny window and a slow host: its items are deferred to the back of the queue, every page is still fetched once', { timeout: 120_000 }, async () => {
  const site = await startMultiSite({ hosts: 5, pages: 200, crawlDelay: 0.2, throttled: [], unavailable: [], hang: false });
  try {
    const q = new MemQueues(1);
    const store = new MemStore();
    const emitted: string[] = [];
    const spec = { kind: 'crawl', shards: 1, seeds: [site.seed], sameHost: false, maxDepth: 100, maxPages: 100_000, perHostRps: 50, concurrency: 8 };
    const s = startShard(q, 0, spec, store, emitted, { attempt: 1, limits: { window: 20, hostCap: 3 } });
    await untilDone(q, [s], 90_000);
    const result = (await s.run) as { pages: number; deferred: number; duplicates: number };
    const want = site.reachable();
    assert.ok(result.deferred > 0, 'the slow host was deferred');
    assert.equal(new Set(emitted).size, emitted.length, 'a page was emitted twice');
    assert.deepEqual(new Set(emitted), want);
    for (const [k, n] of okCounts(site)) assert.equal(n, 1, `${k} fetched ${n} times`);
    assert.equal(result.pages, want.size);
  } finally {
    await site.close();
  }
});

test('a shard stopped midway and started again: its held items come back redelivered and are fetched, its seen-set is reloaded, every page is emitted', { timeout: 120_000 }, async () => {
  const site = await startMultiSite({ hosts: 10, pages: 800, crawlDelay: 0, throttled: [], unavailable: [], hang: false });
  try {
    const q = new MemQueues(3);
    const stores = MemStore.linked(3);
    const emitted: string[] = [];
    const spec = { kind: 'crawl', shards: 3, seeds: [site.seed], sameHost: false, maxDepth: 100, maxPages: 100_000, perHostRps: 20, concurrency: 8 };
    const shards = [0, 1, 2].map((i) => startShard(q, i, spec, stores[i]!, emitted, { attempt: 1 }));
    // Midway, once shard 1 has finished pages of its own (its seen log holds finished URLs only).
    while (emitted.length < 250 || !stores[1]!.kv.has('seen.0')) await new Promise((r) => setTimeout(r, 20));
    // Stop shard 1 as a move does: its run returns, and what it held goes back to its queue.
    shards[1]!.stop.abort();
    await shards[1]!.run;
    const back = q.giveBack(1);
    assert.ok(stores[1]!.kv.has('seen.0'), 'shard 1 wrote seen deltas');
    const cp = shards[1]!.checkpointed as { seen: number } | undefined;
    assert.ok(cp && cp.seen >= 1, `its checkpoint points at its deltas: ${JSON.stringify(cp)}`);
    assert.ok(JSON.stringify(cp).length < 1024, 'the checkpoint is small');
    shards[1] = startShard(q, 1, spec, stores[1]!, emitted, { attempt: 2, checkpointed: cp });
    await untilDone(q, shards, 90_000);
    await Promise.all(shards.map((s) => s.run));
    const want = site.reachable();
    assert.deepEqual(new Set(emitted), want, 'every reachable page emitted');
    const twice = [...okCounts(site).values()].filter((n) => n > 1).length;
    assert.ok(back > 0, 'shard 1 held items when it stopped');
    assert.ok(twice <= back, `${twice} pages fetched twice, ${back} items were held`);
  } finally {
    await site.close();
  }
});

/** flakySite: two hosts of `pages` pages each, page i linking to pages i and i+1 on both; host 0's robots.txt answers 500 twice, host 1's pages each go unanswered the first time. */
async function flakySite(pages: number): Promise<{ seed: string; urls: Set<string>; close: () => Promise<void> }> {
  const servers: Server[] = [];
  const hosts: string[] = [];
  let robotsFailures = 2;
  const asked = new Set<string>();
  for (let h = 0; h < 2; h++) {
    const server = createServer((req, res) => {
      const path = req.url ?? '/';
      if (path === '/robots.txt') {
        if (h === 0 && robotsFailures-- > 0) return void res.writeHead(500).end('down');
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end('User-agent: *\n');
      }
      const m = /^\/p\/(\d+)\.html$/.exec(path);
      if (!m) return void res.writeHead(404).end();
      // The first request for each page of host 1 gets no answer (the client times out).
      if (h === 1 && !asked.has(path)) return void asked.add(path);
      const n = Number(m[1]);
      const links = hosts.flatMap((x) => [n, n + 1].filter((k) => k < pages).map((k) => `<a href="http://${x}/p/${k}.html">${k}</a>`)).join('');
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>${n}</title>${links}`);
    });
    await new Promise<void>((resolve) => server.listen(0, `127.0.0.${2 + h}`, resolve));
    servers.push(server);
    hosts.push(`127.0.0.${2 + h}:${(server.address() as AddressInfo).port}`);
  }
  const urls = new Set(hosts.flatMap((x) => Array.from({ length: pages }, (_, n) => `http://${x}/p/${n}.html`)));
  const close = async (): Promise<void> => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  };
  return { seed: `http://${hosts[0]}/p/0.html`, urls, close };
}

test('hosts that fail for a while (robots.txt 500, pages unanswered once): their pages are asked again, every page is emitted, no error', { timeout: 60_000 }, async () => {
  const site = await flakySite(6);
  try {
    const q = new MemQueues(1);
    const emitted: string[] = [];
    const spec = {
      kind: 'crawl', shards: 1, seeds: [site.seed], sameHost: false, maxDepth: 100, maxPages: 1000, perHostRps: 50, perHostConcurrency: 1,
      timeoutMs: 300, backoffMs: 50, backoffMaxMs: 200, parkAfter: 4, maxRetries: 3,
    };
    const s = startShard(q, 0, spec, new MemStore(), emitted, { attempt: 1 });
    await untilDone(q, [s], 30_000);
    const result = (await s.run) as { pages: number; errors: number; skipped: number; skips: object; parked: string[] };
    assert.deepEqual(new Set(emitted), site.urls, 'every page emitted');
    assert.deepEqual(
      { errors: result.errors, skipped: result.skipped, skips: result.skips, parked: result.parked },
      { errors: 0, skipped: 0, skips: { filtered: 0, robots: 0, parked: 0, maxPages: 0 }, parked: [] },
    );
  } finally {
    await site.close();
  }
});

test('a queue that loses items it had stored, or delivers them to the wrong shard: their senders get no receipt, send them again, and every page is fetched and emitted once, by its host\'s owner', { timeout: 120_000 }, async () => {
  const site = await startMultiSite({ hosts: 6, pages: 300, crawlDelay: 0, throttled: [], unavailable: [], hang: false });
  try {
    const q = new MemQueues(3);
    // Every 7th item stored is lost, up to 40: the seed (the first) and links from every shard among them.
    q.loseEvery = 7;
    q.loseUpTo = 40;
    q.misdeliverEvery = 11;
    const stores = MemStore.linked(3);
    const emitted: string[] = [];
    const spec = { kind: 'crawl', shards: 3, seeds: [site.seed], sameHost: false, maxDepth: 100, maxPages: 100_000, perHostRps: 50, concurrency: 8 };
    const limits = { window: 4000, hostCap: 500, resendMs: 300 };
    const shards = [0, 1, 2].map((i) => startShard(q, i, spec, stores[i]!, emitted, { attempt: 1, limits }));
    await untilDone(q, shards, 90_000);
    const results = (await Promise.all(shards.map((s) => s.run))) as Array<{ resent: number }>;
    assert.ok(q.lost > 0, 'the queue lost items');
    assert.ok(results.reduce((n, r) => n + r.resent, 0) >= 1, `sent again: ${JSON.stringify(results.map((r) => r.resent))}`);
    assert.deepEqual(new Set(emitted), site.reachable(), 'every reachable page emitted');
    assert.equal(emitted.length, new Set(emitted).size, 'a page was emitted twice');
    for (const [k, n] of okCounts(site)) assert.equal(n, 1, `${k} fetched ${n} times`);
  } finally {
    await site.close();
  }
});
