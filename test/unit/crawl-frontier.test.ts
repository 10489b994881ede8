// The crawl's scheduling parts on a fake clock: the seen set, per-host
// politeness (windows, concurrency, blocks, Crawl-delay), the host-aware
// back queues, Retry-After and back-off, parking, sitemaps and the new spec
// fields.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SeenSet, SeenSetError } from '#actors/worker/kinds/crawl/seen-set.js';
import { Politeness, windowFor, windowWithDelay, type Release } from '#actors/worker/kinds/crawl/politeness.js';
import { HostQueues } from '#actors/worker/kinds/crawl/host-queues.js';
import { Frontier } from '#actors/worker/kinds/crawl/frontier.js';
import { HostHealth } from '#actors/worker/kinds/crawl/host-health.js';
import { backoffMs, MAX_RETRY_AFTER_MS, parseRetryAfter } from '#actors/worker/kinds/crawl/backoff.js';
import { parseSitemap } from '#actors/worker/kinds/crawl/sitemaps.js';
import { CrawlSpecError, parseSpec } from '#actors/worker/kinds/crawl/spec.js';
import { decodeState, encodeState, stateBytes } from '#actors/worker/kinds/crawl/checkpoint.js';
import { FakeClock } from '../fakes/clock.js';

test('seen set: behaves as a Set of strings under adds and deletes, and survives serialization', () => {
  const op = fc.tuple(fc.constantFrom('add', 'delete', 'has'), fc.integer({ min: 0, max: 3000 }));
  fc.assert(
    fc.property(fc.array(op, { maxLength: 4000 }), (ops) => {
      const s = new SeenSet();
      const model = new Set<string>();
      for (const [kind, n] of ops) {
        const url = `http://h${n % 7}/p/${n}`;
        if (kind === 'add') assert.equal(s.add(url), !model.has(url) && !!model.add(url));
        else if (kind === 'delete') assert.equal(s.delete(url), model.delete(url));
        else assert.equal(s.has(url), model.has(url));
      }
      assert.equal(s.size, model.size);
      const back = SeenSet.deserialize(s.serialize());
      assert.equal(back.size, model.size);
      for (let n = 0; n <= 3000; n += 7) assert.equal(back.has(`http://h${n % 7}/p/${n}`), model.has(`http://h${n % 7}/p/${n}`));
    }),
    { numRuns: 60 },
  );
});

test('seen set: grows past its first table, stays compact, and rejects bytes it did not write', () => {
  const s = new SeenSet();
  for (let i = 0; i < 50_000; i++) s.add(`http://example.com/item/${i}`);
  assert.equal(s.size, 50_000);
  assert.ok(s.heapBytes / s.size <= 64, `${s.heapBytes / s.size} bytes per URL`);
  for (let i = 0; i < 50_000; i += 997) assert.ok(s.has(`http://example.com/item/${i}`));
  assert.ok(!s.has('http://example.com/item/50000'));
  const bytes = s.serialize();
  assert.ok(bytes.length / s.size < 8, `${bytes.length / s.size} serialized bytes per URL`);
  assert.throws(() => SeenSet.deserialize(bytes.subarray(0, bytes.length - 1)), SeenSetError);
  assert.throws(() => SeenSet.deserialize(Uint8Array.from([...bytes, 0])), SeenSetError);
  assert.throws(() => SeenSet.deserialize(Uint8Array.from([9])), SeenSetError);
});

test('crawl-delay windows: the stricter of perHostRps and one request per delay', () => {
  assert.deepEqual(windowWithDelay(20, 0.5), { n: 1, ms: 500 });
  assert.deepEqual(windowWithDelay(2, 0.1), windowFor(2));
  assert.deepEqual(windowWithDelay(0.5, 1), windowFor(0.5));
  assert.deepEqual(windowWithDelay(0.5, 3), { n: 1, ms: 3000 });
  assert.deepEqual(windowWithDelay(5, 0), windowFor(5));
});

/** drive runs `requests` requests to one host through acquire on a fake clock, each lasting its duration; returns start times. */
async function drive(p: Politeness, clock: FakeClock, host: string, durations: number[]): Promise<{ starts: number[]; maxOutstanding: number }> {
  const starts: number[] = [];
  let outstanding = 0;
  let maxOutstanding = 0;
  const signal = new AbortController().signal;
  const one = async (d: number): Promise<void> => {
    const release = await p.acquire(host, signal);
    starts.push(clock.now());
    outstanding++;
    maxOutstanding = Math.max(maxOutstanding, outstanding);
    await clock.sleep(d);
    outstanding--;
    release();
  };
  const all = Promise.all(durations.map(one));
  let done = false;
  void all.then(() => (done = true));
  for (let i = 0; i < 10_000 && !done; i++) await clock.advance(50);
  assert.ok(done, 'requests never finished');
  return { starts, maxOutstanding };
}

test('politeness: no window of the rate holds more than its n starts, and no more than perHostConcurrency run at once', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(0.5, 1, 3, 10),
      fc.integer({ min: 1, max: 4 }),
      fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 25 }),
      async (rps, concurrency, durations) => {
        const clock = new FakeClock();
        const p = new Politeness({ rps, concurrency, clock });
        const { starts, maxOutstanding } = await drive(p, clock, 'h:1', durations);
        const { n, ms } = windowFor(rps);
        starts.sort((a, b) => a - b);
        for (let i = n; i < starts.length; i++) assert.ok(starts[i]! - starts[i - n]! >= ms, `${n + 1} starts within ${ms} ms`);
        assert.ok(maxOutstanding <= concurrency);
      },
    ),
    { numRuns: 25 },
  );
});

test('politeness: a block stops only its host, until it runs out', async () => {
  const clock = new FakeClock();
  const p = new Politeness({ rps: 100, concurrency: 2, clock });
  p.block('a:1', clock.now() + 2000);
  assert.equal(p.readyAt('a:1'), clock.now() + 2000);
  assert.equal(p.readyAt('b:1'), clock.now());
  assert.equal(p.take('a:1'), undefined);
  const b = p.take('b:1');
  assert.ok(b);
  const t0 = clock.now();
  let at = -1;
  void p.acquire('a:1', new AbortController().signal).then((r) => {
    at = clock.now();
    r();
  });
  await clock.advance(1990);
  assert.equal(at, -1);
  await clock.advance(20);
  assert.ok(at >= t0 + 2000, `started at +${at - t0} ms`);
});

test('host queues: the next URL comes from whichever host may be fetched soonest, so throughput is the sum of the per-host limits', async () => {
  const clock = new FakeClock();
  const p = new Politeness({ rps: 4, concurrency: 2, clock });
  const q = new HostQueues(p, false);
  p.onChange = (h) => q.wake(h);
  const hosts = ['a:1', 'b:1', 'c:1', 'd:1', 'e:1'];
  // Host a has far more URLs than the others and comes first in one FIFO.
  for (let i = 0; i < 200; i++) q.add({ url: `http://a:1/${i}`, depth: 0 });
  for (const h of hosts.slice(1)) for (let i = 0; i < 40; i++) q.add({ url: `http://${h}/${i}`, depth: 0 });
  // A slow host blocked for a while does not hold the others back.
  p.block('e:1', clock.now() + 5000);
  const taken = new Map<string, number>();
  const holds: Array<{ at: number; release: Release }> = [];
  const end = clock.now() + 5000;
  while (clock.now() < end) {
    for (;;) {
      const t = q.take(clock.now());
      if (!t || !('entry' in t)) break;
      const h = new URL(t.entry.url).host;
      taken.set(h, (taken.get(h) ?? 0) + 1);
      holds.push({ at: clock.now() + 30, release: t.release });
    }
    await clock.advance(10);
    for (const hd of holds.filter((x) => x.at <= clock.now())) hd.release();
    holds.splice(0, holds.length, ...holds.filter((x) => x.at > clock.now()));
  }
  // 5 s at 4 per second: 20 per host, give or take the window edges.
  for (const h of hosts.slice(0, 4)) assert.ok((taken.get(h) ?? 0) >= 19 && (taken.get(h) ?? 0) <= 21, `${h}: ${taken.get(h)}`);
  assert.equal(taken.get('e:1') ?? 0, 0);
  assert.equal(q.queued, 200 + 4 * 40 - [...taken.values()].reduce((a, b) => a + b, 0));
});

test('host queues: hosts wait for setup, parked hosts drop and refuse their URLs', () => {
  const clock = new FakeClock();
  const p = new Politeness({ rps: 100, concurrency: 2, clock });
  const q = new HostQueues(p, true);
  const setups: string[] = [];
  q.onNewHost = (h, url) => void setups.push(`${h} ${url}`);
  q.add({ url: 'http://a:1/x', depth: 0 });
  q.add({ url: 'http://a:1/y', depth: 0 });
  q.add({ url: 'http://b:1/x', depth: 0 });
  assert.deepEqual(setups, ['a:1 http://a:1/x', 'b:1 http://b:1/x']);
  assert.equal(q.take(clock.now()), undefined, 'a host in setup was scheduled');
  q.ready('a:1');
  const t = q.take(clock.now());
  assert.ok(t && 'entry' in t && t.entry.url === 'http://a:1/x');
  assert.deepEqual(q.park('b:1'), [{ url: 'http://b:1/x', depth: 0 }]);
  assert.equal(q.add({ url: 'http://b:1/z', depth: 0 }), false);
  assert.equal(q.queued, 1);
  // A retry goes to the front of its host's queue.
  q.add({ url: 'http://a:1/x', depth: 0, retries: 1 }, true);
  t.release();
  const next = q.take(clock.now());
  assert.ok(next && 'entry' in next);
  assert.deepEqual(next.entry, { url: 'http://a:1/x', depth: 0, retries: 1 });
});

test('Retry-After: seconds or an HTTP date; anything else is ignored', () => {
  const now = Date.UTC(2026, 0, 1, 12, 0, 0);
  assert.equal(parseRetryAfter('7', now), 7000);
  assert.equal(parseRetryAfter(' 0 ', now), 0);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 12:00:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 11:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('99999999', now), MAX_RETRY_AFTER_MS);
  for (const bad of [null, undefined, '', '1.5', '-3', 'soon', 'Tomorrow']) assert.equal(parseRetryAfter(bad, now), undefined, String(bad));
});

test('back-off doubles per throttle in a row and stops at its cap', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 1, max: 80 }), (base, extra, k) => {
      const cap = base + extra;
      const d = backoffMs(k, base, cap);
      assert.ok(d >= base && d <= cap);
      assert.ok(backoffMs(k + 1, base, cap) === Math.min(cap, 2 * d) || d === cap);
    }),
  );
});

test('host health: a 429 blocks its host; parkAfter failures in a row park it once; a good answer resets the streak', () => {
  const clock = new FakeClock();
  const p = new Politeness({ rps: 100, concurrency: 2, clock });
  const health = new HostHealth({ backoffMs: 100, backoffMaxMs: 1000, parkAfter: 3 }, p, clock);
  const parked: string[] = [];
  health.onPark = (h) => void parked.push(h);
  assert.equal(health.throttled('a:1', '2'), 2000);
  assert.equal(p.blockedUntil('a:1'), clock.now() + 2000);
  assert.equal(health.throttled('b:1', null), 100);
  assert.equal(health.throttled('b:1', null), 200);
  health.ok('b:1');
  assert.equal(health.throttled('b:1', null), 100);
  assert.equal(health.failed('c:1'), false);
  assert.equal(health.failed('c:1'), false);
  health.ok('c:1');
  assert.equal(health.failed('c:1'), false);
  assert.equal(health.failed('c:1'), false);
  assert.equal(health.failed('c:1'), true);
  assert.equal(health.failed('c:1'), true);
  assert.deepEqual(parked, ['c:1']);
  assert.deepEqual(health.parked, ['c:1']);
});

test('sitemaps: page URLs from a urlset, sitemap URLs from an index, nothing from anything else', () => {
  const urlset = `<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
    <url><loc>http://h/a</loc></url><url><loc> /b#x </loc></url><url><loc>mailto:x@y</loc></url></urlset>`;
  assert.deepEqual(parseSitemap(urlset, 'http://h/sitemap.xml'), { pages: ['http://h/a', 'http://h/b'], sitemaps: [] });
  const index = `<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>http://h/s1.xml</loc></sitemap></sitemapindex>`;
  assert.deepEqual(parseSitemap(index, 'http://h/sitemap.xml'), { pages: [], sitemaps: ['http://h/s1.xml'] });
  assert.deepEqual(parseSitemap('<html><body>no</body></html>', 'http://h/'), { pages: [], sitemaps: [] });
});

test('spec: the politeness fields have defaults and are checked, naming the field', () => {
  const s = parseSpec({ seeds: ['http://h/'] });
  assert.equal(s.perHostConcurrency, 2);
  assert.equal(s.sitemaps, false);
  assert.equal(s.maxRetries, 3);
  assert.ok(s.backoffMaxMs >= s.backoffMs);
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ perHostConcurrency: 0 }, /perHostConcurrency must be an integer >= 1/],
    [{ perHostConcurrency: 1.5 }, /perHostConcurrency/],
    [{ sitemaps: 'yes' }, /sitemaps must be true or false/],
    [{ maxRetries: -1 }, /maxRetries must be an integer >= 0/],
    [{ backoffMs: 0 }, /backoffMs must be a number > 0/],
    [{ backoffMs: 5000, backoffMaxMs: 1000 }, /backoffMaxMs must be at least backoffMs/],
    [{ parkAfter: 0 }, /parkAfter must be an integer >= 1/],
  ];
  for (const [extra, msg] of bad) {
    assert.throws(() => parseSpec({ seeds: ['http://h/'], ...extra } as never), (e: unknown) => e instanceof CrawlSpecError && msg.test(e.message), JSON.stringify(extra));
  }
});

test('checkpoint: parked hosts round-trip, and a crawl with none checkpoints exactly as before', () => {
  const base = { visited: ['http://a/1'], frontier: [{ url: 'http://a/2', depth: 1 }], pages: 1, errors: 0, skipped: 0 };
  const without = encodeState(base);
  assert.equal(stateBytes(encodeState({ ...base, parked: [] })), stateBytes(without));
  assert.ok(!('parked' in (without as object)));
  assert.deepEqual(decodeState(encodeState({ ...base, parked: ['b:80'] })).parked, ['b:80']);
  assert.throws(() => decodeState({ ...(without as object), parked: [1] } as never), /parked must be a list of hosts/);
});

test('frontier: once the visited URLs are forgotten it still dedupes and counts, but offers no snapshot', () => {
  const clock = new FakeClock();
  const f = new Frontier(new Politeness({ rps: 100, concurrency: 2, clock }), { setup: false }, ['http://h/done'], [{ url: 'http://h/a', depth: 0 }]);
  f.start();
  assert.ok(f.snapshot());
  f.forgetVisited();
  assert.equal(f.snapshot(), undefined);
  const t = f.take(clock.now());
  assert.ok(t && 'entry' in t);
  f.finish('http://h/a');
  assert.equal(f.visitedCount, 2);
  assert.equal(f.push('http://h/done', 1), false);
  assert.equal(f.push('http://h/a', 1), false);
  assert.equal(f.push('http://h/b', 1), true);
});
