// The crawl kind's pure parts: URL canonicalization, the checkpoint codec and
// its size budget, extraction, item bounding and the rate window shape.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { deflateRawSync } from 'node:zlib';
import { MAX_STATE_BYTES, type Json } from '#kinds/api.js';
import { decodeState, encodeState, stateBytes, type CrawlState } from '#actors/worker/kinds/crawl/checkpoint.js';
import { extract } from '#actors/worker/kinds/crawl/extract.js';
import { canonicalize, Frontier } from '#actors/worker/kinds/crawl/frontier.js';
import { buildItem } from '#actors/worker/kinds/crawl/item.js';
import { Politeness, windowFor } from '#actors/worker/kinds/crawl/politeness.js';
import type { Entry } from '#actors/worker/kinds/crawl/host-queues.js';
import { FakeClock } from '../fakes/clock.js';

const clock = new FakeClock();
const newFrontier = (visited: string[], queued: Entry[]): Frontier => {
  const f = new Frontier(new Politeness({ rps: 1e6, concurrency: 1e6, clock }), { setup: false }, visited, queued);
  f.start();
  return f;
};

const urls = fc.webUrl({
  withFragments: true,
  withQueryParameters: true,
  authoritySettings: { withPort: true, withIPv4: true, withIPv6: true, withUserInfo: true },
});

test('canonicalize is idempotent and never keeps a fragment', () => {
  fc.assert(
    fc.property(urls, (u) => {
      const c = canonicalize(u);
      assert.ok(c !== null, `webUrl gave an unparsable URL: ${u}`);
      assert.equal(canonicalize(c), c);
      assert.ok(!c.includes('#'), c);
    }),
    { numRuns: 2000 },
  );
});

test('canonicalize: relative references resolve, idempotently and without fragments', () => {
  const rel = fc.oneof(
    fc.string(),
    fc.webPath(),
    fc.tuple(fc.webPath(), fc.webQueryParameters(), fc.webFragments()).map(([p, q, f]) => `${p}?${q}#${f}`),
    fc.webFragments().map((f) => `#${f}`),
  );
  fc.assert(
    fc.property(urls, rel, (base, r) => {
      const c = canonicalize(r, base);
      if (c === null) return;
      assert.equal(canonicalize(c), c);
      assert.ok(!c.includes('#'), c);
    }),
    { numRuns: 2000 },
  );
});

test('canonicalize: case of scheme and host, default ports and empty queries do not matter', () => {
  const flip = (s: string, bits: number[]): string =>
    [...s].map((ch, i) => ((bits[i % bits.length] ?? 0) ? ch.toUpperCase() : ch)).join('');
  fc.assert(
    fc.property(
      fc.constantFrom('http', 'https'),
      fc.domain(),
      fc.webPath(),
      fc.array(fc.integer({ min: 0, max: 1 }), { minLength: 1, maxLength: 8 }),
      (scheme, host, path, bits) => {
        const plain = canonicalize(`${scheme}://${host}${path}`);
        const port = scheme === 'http' ? 80 : 443;
        assert.equal(canonicalize(`${flip(scheme, bits)}://${flip(host, bits)}:${port}${path}?#x`), plain);
      },
    ),
  );
  assert.equal(canonicalize('HTTP://Example.COM:80/a/../b/./c?q=1&Q=2#frag'), 'http://example.com/b/c?q=1&Q=2');
  assert.equal(canonicalize('/x?y#z', 'https://h.example:8443/p/q'), 'https://h.example:8443/x?y');
  assert.equal(canonicalize('mailto:a@b.c'), null);
  assert.equal(canonicalize('javascript:void(0)', 'http://h/'), null);
  assert.equal(canonicalize('ftp://h/x'), null);
  assert.equal(canonicalize('http://'), null);
});

const anyString = fc.oneof(
  fc.string({ unit: 'binary' }),
  // Lone surrogates and separators: what would break a naive text encoding.
  fc.string({ unit: fc.constantFrom('\ud800', '\udc00', 'a', '\n', '\t', '"', '\\', '/', '\u0000') }),
);

test('checkpoint codec: decode(encode(x)) deep-equals x', () => {
  const state = (s: fc.Arbitrary<string>): fc.Arbitrary<CrawlState> =>
    fc.record(
      {
        visited: fc.array(s, { maxLength: 60 }),
        frontier: fc.array(fc.record({ url: s, depth: fc.nat({ max: 1000 }) }, { noNullPrototype: true }), { maxLength: 60 }),
        pages: fc.nat(),
        errors: fc.nat(),
        skipped: fc.nat(),
      },
      { noNullPrototype: true },
    );
  fc.assert(fc.property(state(anyString), (x) => assert.deepEqual(decodeState(encodeState(x)), x)), { numRuns: 500 });
  fc.assert(fc.property(state(urls), (x) => assert.deepEqual(decodeState(encodeState(x)), x)), { numRuns: 200 });
  // Sorted, as the crawl hands the visited set over.
  fc.assert(
    fc.property(state(urls), (x) => {
      x.visited.sort();
      assert.deepEqual(decodeState(encodeState(x)), x);
    }),
    { numRuns: 200 },
  );
});

test('checkpoint codec: checkpoints deflated by node:zlib (before fflate) still decode, and the bytes match', () => {
  const x: CrawlState = { visited: ['http://a/1', 'http://a/2'], frontier: [{ url: 'http://a/3', depth: 2 }], pages: 2, errors: 0, skipped: 1 };
  const zpack = (v: unknown): string => deflateRawSync(JSON.stringify(v), { level: 6 }).toString('base64');
  const now = encodeState(x) as { [k: string]: Json };
  const old = { ...now, visited: zpack([0, 'http://a/1', 9, '2']), frontier: zpack([[0, 'http://a/3'], [2]]) };
  assert.deepEqual(decodeState(old), x);
  assert.deepEqual(decodeState(now), x);
});

test('checkpoint codec: rejects what it did not produce, naming the problem', () => {
  const good = encodeState({ visited: ['http://a/'], frontier: [{ url: 'http://a/b', depth: 1 }], pages: 1, errors: 0, skipped: 0 });
  assert.throws(() => decodeState(null), /checkpoint: not an object/);
  assert.throws(() => decodeState([]), /checkpoint: not an object/);
  assert.throws(() => decodeState({ ...(good as object), v: 2 }), /unsupported version 2/);
  assert.throws(() => decodeState({ ...(good as object), visited: 'not base64 deflate!' }), /checkpoint visited: cannot inflate/);
  assert.throws(() => decodeState({ ...(good as object), visited: 3 }), /checkpoint visited: expected a base64 string/);
  assert.throws(() => decodeState({ ...(good as object), pages: -1 }), /checkpoint: pages must be a count/);
});

test('checkpoint size: 5,000 visited URLs and a 2,000-URL frontier fit MAX_STATE_BYTES', (t) => {
  // A realistic crawl state: a scattered sample of a big site's page numbers,
  // the visited set sorted as Frontier.snapshot() hands it over.
  const rnd = fc.sample(fc.integer({ min: 0, max: 49_999 }), { numRuns: 40_000, seed: 7 });
  const ids = [...new Set(rnd)];
  assert.ok(ids.length >= 7000);
  const url = (n: number): string => `http://127.0.0.1:43817/p/${n}.html`;
  const frontier = newFrontier(
    ids.slice(0, 5000).map(url),
    ids.slice(5000, 7000).map((n, i) => ({ url: url(n), depth: 3 + (i % 4) })),
  );
  const snap = frontier.snapshot()!;
  assert.equal(snap.visited.length, 5000);
  assert.equal(snap.frontier.length, 2000);
  const state = encodeState({ ...snap, pages: 4990, errors: 10, skipped: 1234 });
  const bytes = stateBytes(state);
  t.diagnostic(`checkpoint of 5,000 visited + 2,000 queued URLs: ${bytes} bytes (limit ${MAX_STATE_BYTES})`);
  assert.ok(bytes <= MAX_STATE_BYTES, `${bytes} bytes`);
  const back = decodeState(state);
  assert.deepEqual(back.visited, snap.visited);
  assert.deepEqual(back.frontier, snap.frontier);

  // Longer, more varied URLs still fit: the budget is not tuned to one shape.
  const wordy = (n: number): string => `https://www.example-shop.com/catalog/category-${n % 37}/item-${n}?ref=list&page=${n % 9}`;
  const wide = encodeState({
    visited: ids.slice(0, 5000).map(wordy).sort(),
    frontier: ids.slice(5000, 7000).map((n) => ({ url: wordy(n), depth: 2 })),
    pages: 5000,
    errors: 0,
    skipped: 0,
  });
  t.diagnostic(`same with longer e-commerce URLs: ${stateBytes(wide)} bytes`);
  assert.ok(stateBytes(wide) <= MAX_STATE_BYTES);
});

test('frontier: a URL is queued once whether found as a link or as a redirect target', () => {
  const f = newFrontier(['http://h/done'], [{ url: 'http://h/a', depth: 0 }]);
  assert.equal(f.push('http://h/done', 1), false);
  assert.equal(f.push('http://h/a', 1), false);
  assert.equal(f.push('http://h/b', 1), true);
  const a = f.take(clock.now())!;
  assert.ok('entry' in a);
  assert.deepEqual(a.entry, { url: 'http://h/a', depth: 0 });
  assert.equal(f.claim('http://h/b'), false, 'queued URL claimed as a redirect target');
  assert.equal(f.claim('http://h/c'), true);
  assert.equal(f.push('http://h/c', 1), false, 'redirect target queued again');
  // In flight and queued entries are what a resume must fetch.
  assert.deepEqual(f.snapshot(), { visited: ['http://h/done'], frontier: [{ url: 'http://h/a', depth: 0 }, { url: 'http://h/b', depth: 1 }] });
  f.finish('http://h/a', ['http://h/a', 'http://h/c']);
  assert.deepEqual(f.snapshot(), { visited: ['http://h/a', 'http://h/c', 'http://h/done'], frontier: [{ url: 'http://h/b', depth: 1 }] });
});

test('extract: title, canonical deduped links (honouring <base>), fields by selector', () => {
  const html = Buffer.from(`<!doctype html><html><head><title>  Café &amp; co </title><base href="/docs/"></head>
    <body><h1>Hi</h1><p class="x"> first </p><p class="x">second</p>
    <a href="a.html#top">a</a><a href="a.html">again</a><a href="HTTP://Other.Example/Z">z</a>
    <a href="mailto:x@y">m</a><a href="javascript:go()">j</a><a>no href</a><area href="/map">
    <a href="  b.html ">b</a></body></html>`);
  const ex = extract(html, 'text/html; charset=utf-8', 'http://site.example/p/1.html', { h: 'h1', x: 'p.x', none: 'table td' });
  assert.equal(ex.title, 'Café & co');
  assert.deepEqual(ex.links, [
    'http://site.example/docs/a.html',
    'http://other.example/Z',
    'http://site.example/map',
    'http://site.example/docs/b.html',
  ]);
  assert.deepEqual(ex.fields, { h: 'Hi', x: 'first', none: null });

  assert.equal(extract(Buffer.from('<p>no title</p>'), null, 'http://h/', {}).title, null);
  // The declared charset decides how bytes read.
  const latin1 = Buffer.from('<title>caf\xe9</title>', 'latin1');
  assert.equal(extract(latin1, 'text/html; charset=iso-8859-1', 'http://h/', {}).title, 'café');
});

test('items stay under MAX_STATE_BYTES: a link farm is cut and marked truncated', () => {
  const links = Array.from({ length: 5000 }, (_, i) => `http://farm.example/some/longish/path/${i}.html`);
  const item = buildItem('http://farm.example/', 200, 1, { title: 't', links, fields: { a: 'x'.repeat(4096) } }, new Date(0).toISOString());
  const size = Buffer.byteLength(JSON.stringify(item));
  assert.ok(size <= MAX_STATE_BYTES, `${size}`);
  assert.equal(item.truncated, true);
  assert.ok(item.links.length > 100);
  assert.deepEqual(item.links, links.slice(0, item.links.length));

  const small = buildItem('http://h/', 404, 0, { title: null, links: ['http://h/a'], fields: {} }, 'now');
  assert.deepEqual(small, { url: 'http://h/', status: 404, depth: 0, title: null, links: ['http://h/a'], fields: {}, fetchedAt: 'now' });

  const fieldy = buildItem('http://h/', 200, 0, { title: null, links: [], fields: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i}`, '\u0001'.repeat(4096)])) }, 'now');
  assert.ok(Buffer.byteLength(JSON.stringify(fieldy)) <= MAX_STATE_BYTES);
});

test('rate windows: floor(rps) per second, or one per 1/rps seconds below 1/s', () => {
  assert.deepEqual(windowFor(5), { n: 5, ms: 1000 });
  assert.deepEqual(windowFor(2.5), { n: 2, ms: 1000 });
  assert.deepEqual(windowFor(0.5), { n: 1, ms: 2000 });
  assert.deepEqual(windowFor(1e6), { n: 1e6, ms: 1000 });
  assert.throws(() => windowFor(0), /perHostRps must be > 0/);
});
