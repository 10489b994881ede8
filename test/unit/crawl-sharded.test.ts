// The sharded crawl's rules on plain values and a fake clock: host → shard
// routing (stable, in range, the same for every URL of a host or domain),
// maxPages shares, the deferral rule, seen-delta encoding, the rule that
// an item is acknowledged only once its URL's hash is in a stored delta, and
// robots.txt that cannot be reached asked again rather than taken as final.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { partitionKey, shardOf, shardOfKey, urlId } from '#actors/worker/kinds/crawl/partition.js';
import { deferredId, toDefer } from '#actors/worker/kinds/crawl/deferral.js';
import { decodeDelta, deltaKey, encodeDelta, FLUSH_MS, loadSeen, MAX_DELTA_HASHES, SeenLog, SeenLogError } from '#actors/worker/kinds/crawl/seen-log.js';
import { hash64, SeenSet } from '#actors/worker/kinds/crawl/seen-set.js';
import { shareOf } from '#actors/worker/kinds/crawl/shard-items.js';
import { CrawlSpecError, parseSpec } from '#actors/worker/kinds/crawl/spec.js';
import { Politeness } from '#actors/worker/kinds/crawl/politeness.js';
import { HostQueues } from '#actors/worker/kinds/crawl/host-queues.js';
import { RobotsCache, type RobotsPolicy } from '#actors/worker/kinds/crawl/robots.js';
import { FetchError, type Fetched, type Fetcher } from '#actors/worker/kinds/crawl/fetch.js';
import { MAX_STATE_BYTES, type Json } from '#kinds/api.js';
import { FakeClock, settle } from '../fakes/clock.js';
import { alive } from '../fakes/gc.js';
import { ShardedCrawl } from '#actors/worker/kinds/crawl/sharded.js';
import { readShardCheckpoint } from '#actors/worker/kinds/crawl/shard-checkpoint.js';
import type { InboxItem, TaskContext, TaskStore } from '#kinds/api.js';

test('routing: a partition key maps to the same shard every time, in range, as (64-bit hash) mod N (fast-check)', () => {
  fc.assert(
    fc.property(fc.string(), fc.integer({ min: 1, max: 256 }), (key, n) => {
      const i = shardOfKey(key, n);
      assert.ok(Number.isInteger(i) && i >= 0 && i < n);
      assert.equal(shardOfKey(key, n), i);
      const [hi, lo] = hash64(key);
      assert.equal(i, Number(((BigInt(hi) << 32n) | BigInt(lo)) % BigInt(n)));
    }),
  );
});

test('routing: pinned values, so a change of hash (which would move hosts between shards of a running crawl) fails here', () => {
  assert.deepEqual(['127.0.0.2:8080', 'example.com', 'bbc.co.uk', 'a'].map((k) => [shardOfKey(k, 3), shardOfKey(k, 7), shardOfKey(k, 256)]), [[0, 2, 86], [1, 3, 238], [2, 5, 115], [1, 3, 202]]);
  assert.equal(urlId('http://example.com/'), '24401b2a5746ef20');
  assert.equal(shardOfKey('anything', 1), 0);
});

test('routing: by host every URL of a host:port goes to one shard; by domain every host of a registrable domain does, and IPs and localhost fall back to host:port', () => {
  assert.equal(partitionKey('http://www.bbc.co.uk/news', 'host'), 'www.bbc.co.uk');
  assert.equal(partitionKey('http://www.bbc.co.uk/news', 'domain'), 'bbc.co.uk');
  assert.equal(partitionKey('https://news.bbc.co.uk:8443/x', 'domain'), 'bbc.co.uk');
  assert.equal(partitionKey('http://127.0.0.2:8080/p/1.html', 'domain'), '127.0.0.2:8080');
  assert.equal(partitionKey('http://localhost:3000/', 'domain'), 'localhost:3000');
  assert.equal(partitionKey('http://[::1]:3000/', 'domain'), '[::1]:3000');
  fc.assert(
    fc.property(fc.webPath(), fc.webPath(), fc.integer({ min: 1, max: 64 }), (a, b, n) => {
      assert.equal(shardOf(`http://h.example.com:81${a}`, 'host', n), shardOf(`http://h.example.com:81${b}`, 'host', n));
      assert.equal(shardOf(`http://a.example.com${a}`, 'domain', n), shardOf(`http://b.example.com${b}`, 'domain', n));
    }),
  );
});

test('maxPages shares add up to maxPages exactly, and differ by at most one (fast-check)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 10_000_000 }), fc.integer({ min: 1, max: 256 }), (max, n) => {
      const shares = Array.from({ length: n }, (_, i) => shareOf(max, i, n));
      assert.equal(shares.reduce((a, b) => a + b, 0), max);
      assert.ok(Math.max(...shares) - Math.min(...shares) <= 1);
    }),
  );
});

test('spec: partitionBy is host or domain (default host) and needs shards; conditional is refused on shards', () => {
  const seeds = ['http://example.com/'];
  assert.equal(parseSpec({ seeds, shards: 3 }).partitionBy, 'host');
  assert.equal(parseSpec({ seeds, shards: 3 }).shards, 3);
  assert.equal(parseSpec({ seeds }).shards, undefined);
  assert.equal(parseSpec({ seeds, shards: 3, partitionBy: 'domain' }).partitionBy, 'domain');
  assert.throws(() => parseSpec({ seeds, shards: 3, partitionBy: 'ip' }), (e: Error) => e instanceof CrawlSpecError && /partitionBy must be one of "host", "domain"/.test(e.message));
  assert.throws(() => parseSpec({ seeds, partitionBy: 'host' }), /partitionBy needs spec.shards/);
  assert.throws(() => parseSpec({ seeds, shards: 2, conditional: true }), /not available on a sharded crawl/);
  // A scheduled sharded crawl does not get conditional recrawls by default (they would be refused).
  assert.equal(parseSpec({ seeds, shards: 2, schedule: { every: '1h' } as unknown as Json }).conditional, false);
});

test('deferral: nothing while the window has room; with it full, each host over the cap gives back what is over (fast-check)', () => {
  assert.deepEqual(toDefer(3999, 4000, [['a', 3000]], 500), []);
  assert.deepEqual(toDefer(4000, 4000, [['a', 3000], ['b', 500], ['c', 501]], 500), [['a', 2500], ['c', 1]]);
  fc.assert(
    fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 4 }), fc.integer({ min: 0, max: 5000 })), fc.integer({ min: 1, max: 1000 }), (queues, cap) => {
      const lens = Object.entries(queues);
      const held = lens.reduce((n, [, l]) => n + l, 0);
      const out = new Map(toDefer(held, Math.min(held, 4000), lens, cap));
      for (const [h, l] of lens) assert.equal(l - (out.get(h) ?? 0), Math.min(l, cap), `host ${h}`);
    }),
  );
  assert.equal(deferredId('abc', 0), 'abc');
  assert.notEqual(deferredId('abc', 1), deferredId('abc', 2));
});

test('deferral: the host queues give back their newest entries and count them out', () => {
  const clock = new FakeClock();
  const q = new HostQueues(new Politeness({ rps: 1, concurrency: 1, clock }), false);
  for (let i = 0; i < 5; i++) q.add({ url: `http://a.test/${i}`, depth: 0 });
  q.add({ url: 'http://b.test/0', depth: 0 });
  assert.deepEqual([...q.lengths()], [['a.test', 5], ['b.test', 1]]);
  assert.deepEqual(q.takeBack('a.test', 2).map((e) => e.url), ['http://a.test/3', 'http://a.test/4']);
  assert.equal(q.queued, 4);
  assert.deepEqual(q.takeBack('b.test', 9).map((e) => e.url), ['http://b.test/0']);
  assert.deepEqual([...q.lengths()], [['a.test', 3]]);
});

test('politeness: notBefore holds every host, robots.txt included, until then', async () => {
  const clock = new FakeClock();
  const p = new Politeness({ rps: 10, concurrency: 2, clock, notBefore: clock.now() + 1000 });
  assert.equal(p.readyAt('a:1'), clock.now() + 1000);
  assert.equal(p.take('a:1'), undefined);
  await clock.advance(1000);
  assert.ok(p.take('a:1'));
});

test('seen deltas: encode/decode round-trips any hashes, and anything else is refused (fast-check)', () => {
  const half = fc.integer({ min: 0, max: 2 ** 32 - 1 });
  fc.assert(
    fc.property(fc.array(fc.tuple(half, half).filter(([h, l]) => h !== 0 || l !== 0), { maxLength: 200 }), (pairs) => {
      const flat = pairs.flat();
      assert.deepEqual([...decodeDelta(encodeDelta(flat))], flat);
    }),
  );
  assert.throws(() => decodeDelta(42), SeenLogError);
  assert.throws(() => decodeDelta('AAAA'), /8-byte/);
  assert.throws(() => decodeDelta(encodeDelta([0, 0])), /zero hash/);
  // A full delta fits a task store value.
  const full = encodeDelta(new Array(MAX_DELTA_HASHES * 2).fill(0xffffffff));
  assert.ok(Buffer.byteLength(JSON.stringify(full)) <= MAX_STATE_BYTES);
});

class MemStore {
  readonly kv = new Map<string, Json>();
  puts: Array<{ key: string; resolve: () => void; reject: (e: Error) => void }> = [];
  auto = true;
  async get(key: string): Promise<Json | undefined> {
    return this.kv.get(key);
  }
  put(key: string, value: Json): Promise<void> {
    if (this.auto) {
      this.kv.set(key, value);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.puts.push({ key, resolve: () => (this.kv.set(key, value), resolve()), reject }));
  }
}

test('ack rule: an item is acknowledged only once its hash is in a stored delta', async () => {
  const clock = new FakeClock();
  const store = new MemStore();
  store.auto = false;
  const log = new SeenLog(store, clock, 0);
  const acked: string[] = [];
  const ackWhenDurable = (name: string, ticket: number) => void log.durable(ticket).then(() => acked.push(name));
  const [h1, l1] = hash64('http://a.test/1');
  ackWhenDurable('one', log.addHash(h1, l1));
  await settle();
  assert.deepEqual(acked, [], 'nothing acknowledged before a delta is written');
  await clock.advance(FLUSH_MS);
  assert.equal(store.puts.length, 1, 'one delta written after FLUSH_MS');
  const [h2, l2] = hash64('http://a.test/2');
  ackWhenDurable('two', log.addHash(h2, l2)); // added while the first delta is being written: in the next one
  store.puts.shift()!.resolve();
  await settle();
  assert.deepEqual(acked, ['one'], 'the first item once its delta is stored, not the second');
  assert.equal(log.written, 1);
  await clock.advance(FLUSH_MS);
  store.puts.shift()!.resolve();
  await settle();
  assert.deepEqual(acked, ['one', 'two']);
  assert.deepEqual([...store.kv.keys()], [deltaKey(0), deltaKey(1)]);
  // With nothing added since the last delta, `filling` is durable at once (no write is coming).
  let early = false;
  void log.durable(log.filling).then(() => (early = true));
  await settle();
  assert.equal(early, true);
  // A ticket for what is being filled (an item seen again) waits for the next delta too.
  log.addHash(6, 6);
  const again = log.filling;
  let done = false;
  void log.durable(again).then(() => (done = true));
  await settle();
  assert.equal(done, false);
  log.addHash(7, 7);
  await clock.advance(FLUSH_MS);
  store.puts.shift()!.resolve();
  await settle();
  assert.equal(done, true);
  // A delta that cannot be stored fails every waiter: those items are never acknowledged.
  const t = log.addHash(8, 8);
  const failed = log.durable(t).then(() => 'acked', (e: Error) => e.message);
  await clock.advance(FLUSH_MS);
  store.puts.shift()!.reject(new Error('not owner'));
  assert.match(await failed, /seen delta not stored: not owner/);
  log.close();
});

test('seen deltas: a full delta is sealed at once; loading reads every delta back, past the checkpoint\'s count, and counts holes as lost', async () => {
  const clock = new FakeClock();
  const store = new MemStore();
  const log = new SeenLog(store, clock, 0);
  const urls = Array.from({ length: MAX_DELTA_HASHES + 10 }, (_, i) => `http://h${i % 7}.test/p/${i}`);
  const tickets = urls.map((u) => log.addHash(...hash64(u)));
  assert.equal(tickets[MAX_DELTA_HASHES - 1], 0);
  assert.equal(tickets[MAX_DELTA_HASHES], 1);
  await settle();
  assert.equal(log.written, 1, 'the full delta went out before the timer');
  await clock.advance(FLUSH_MS);
  assert.equal(log.written, 2);
  log.close();
  const back = new SeenSet();
  assert.deepEqual(await loadSeen(store, 1, back), { next: 2, found: 2, hashes: urls.length, lost: 0 });
  for (const u of urls) assert.ok(back.has(u));
  // The bounded store dropped delta 0; the checkpoint said 40 were written (say, the newest were dropped too).
  store.kv.delete(deltaKey(0));
  assert.deepEqual(await loadSeen(store, 40, new SeenSet()), { next: 40, found: 1, hashes: 10, lost: 39 });
  // Deltas past a gap in the newest batch are still found.
  store.kv.set(deltaKey(20), encodeDelta([1, 2]));
  assert.equal((await loadSeen(store, 0, new SeenSet())).next, 21);
});

test('a shard keeps no inbox item once it is acknowledged, however many it reads (its memory does not grow with the crawl)', { timeout: 30_000 }, async () => {
  const N = 300;
  const refs: Array<WeakRef<object>> = [];
  let acked = 0;
  let given = 0;
  const stop = new AbortController();
  // Items too deep to fetch: each is read, skipped, and acknowledged once its hash is stored, with no request made.
  const inbox: AsyncIterable<InboxItem> = {
    [Symbol.asyncIterator]: () => ({
      next: async (): Promise<IteratorResult<InboxItem>> => {
        if (given === N) await new Promise((resolve) => stop.signal.addEventListener('abort', resolve, { once: true }));
        if (stop.signal.aborted) return { done: true, value: undefined };
        const item: InboxItem = { item: { u: `http://a.test/p/${given++}`, d: 99 }, redelivered: false, ack: async () => void acked++ };
        refs.push(new WeakRef(item));
        return { done: false, value: item };
      },
    }),
  };
  const spec = { kind: 'crawl', shards: 1, seeds: ['http://a.test/'], maxDepth: 2 };
  const ctx: TaskContext = {
    resource: { name: 'crawl/0', id: 'r1_s0' }, spec, signal: stop.signal, attempt: 1, checkpointed: undefined,
    log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
    checkpoint: async () => {}, progress: () => {}, emit: async () => {},
    shard: { index: 0, count: 1 }, send: async () => {}, inbox, store: new MemStore() as unknown as TaskStore, busy: () => () => {},
  };
  const run = new ShardedCrawl(ctx, parseSpec(spec)).run();
  while (acked < N) await new Promise((r) => setTimeout(r, 20));
  const kept = await alive(refs);
  stop.abort();
  await run;
  assert.ok(kept <= 1, `${kept} of ${N} acknowledged items still reachable`);
});

test('robots.txt unreachable (5xx, or no answer) disallows the host only for now: asked again after its back-off until the host is parked; 4xx allows all', async () => {
  const answer = (status: number, body = ''): Fetched => ({
    url: 'http://h.test/robots.txt', status, contentType: 'text/plain', location: null, retryAfter: null, etag: null, lastModified: null, body: Buffer.from(body),
  });
  const load = async (replies: Array<Fetched | Error>, parkAfter: number) => {
    let failures = 0;
    const events: string[] = [];
    const fetcher = {
      get: async () => {
        const r = replies.shift() ?? answer(404);
        if (r instanceof Error) throw r;
        return r;
      },
    } as unknown as Fetcher;
    const policy: RobotsPolicy = {
      throttled: () => false,
      failed: (host) => (events.push(`failed ${host}`), ++failures < parkAfter),
      answered: (host) => void events.push(`answered ${host}`),
    };
    const robots = new RobotsCache(fetcher, new AbortController().signal, { warn: () => {} }, policy);
    return { allowed: await robots.allowed('http://h.test/p/1.html'), events };
  };
  const timeout = new FetchError('GET http://h.test/robots.txt: timed out after 1500 ms', { host: 'h.test' });
  // Two failures, then the file: its rules hold, and the host's failure streak ends.
  assert.deepEqual(await load([answer(500), timeout, answer(200, 'User-agent: *\nDisallow: /private/\n')], 5), { allowed: true, events: ['failed h.test', 'failed h.test', 'answered h.test'] });
  // Unreachable until the host is parked: disallowed whole (and the crawl lists the host parked).
  assert.equal((await load([answer(502), answer(500), answer(503), answer(500)], 3)).allowed, false);
  // Unavailable (4xx): everything allowed, and the host answered.
  assert.deepEqual(await load([answer(404)], 3), { allowed: true, events: ['answered h.test'] });
});

test('a shard checkpoint keeps why URLs were skipped (parked hosts apart from robots.txt and filters); an old or malformed one reads as none', () => {
  const skips = { filtered: 4, robots: 2, parked: 31, maxPages: 0 };
  assert.deepEqual(readShardCheckpoint({ v: 2, pages: 9, skipped: 37, skips }).counts.skips, skips);
  assert.deepEqual(readShardCheckpoint({ v: 2, pages: 9, skipped: 37 }).counts.skips, { filtered: 0, robots: 0, parked: 0, maxPages: 0 });
  assert.deepEqual(readShardCheckpoint({ v: 2, skips: { parked: -1, robots: 'x', other: 5 } }).counts.skips, { filtered: 0, robots: 0, parked: 0, maxPages: 0 });
});
