// Conditional recrawls on plain values (recrawl.ts, page-memory.ts): what is
// remembered of a page, the headers that ask about it, what counts as "not
// modified", the stored value's round trip and bound, and the crawl's page
// memory over an in-memory store (reads and writes that fail cost a full
// fetch, never the crawl).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_STATE_BYTES, type Json, type TaskLog, type TaskStore } from '#kinds/api.js';
import {
  conditionalHeaders, decodeRemembered, encodeRemembered, isNotModified, pageKey, rememberOf, type Remembered,
} from '#actors/worker/kinds/crawl/recrawl.js';
import { PageMemory } from '#actors/worker/kinds/crawl/page-memory.js';
import { parseSpec } from '#actors/worker/kinds/crawl/spec.js';
import { decodeState, encodeState } from '#actors/worker/kinds/crawl/checkpoint.js';
import { checkStoreKey } from '#protocol/task-state.js';

const ETAG = '"L3AvMS5odG1s-v1"';
const LM = 'Tue, 01 Dec 2026 00:00:00 GMT';
const links = ['http://h/p/2.html', 'http://h/p/1.html', 'http://h/p/2.html'];

test('what is remembered: 2xx pages with a validator, links sorted and deduped', () => {
  assert.deepEqual(rememberOf({ status: 200, etag: ETAG, lastModified: LM }, links), {
    etag: ETAG, lastModified: LM, links: ['http://h/p/1.html', 'http://h/p/2.html'],
  });
  assert.deepEqual(rememberOf({ status: 203, etag: null, lastModified: LM }, []), { lastModified: LM, links: [] });
  assert.deepEqual(rememberOf({ status: 200, etag: ETAG, lastModified: 'not a date' }, []), { etag: ETAG, links: [] }, 'an unreadable date is not sent back');
  assert.equal(rememberOf({ status: 200, etag: null, lastModified: null }, links), undefined, 'no validator: fetched in full next run');
  assert.equal(rememberOf({ status: 200, etag: '  ', lastModified: null }, links), undefined);
  for (const status of [301, 304, 404, 429, 500]) {
    assert.equal(rememberOf({ status, etag: ETAG, lastModified: LM }, links), undefined, `status ${status}`);
  }
});

test('the headers that ask: If-None-Match and If-Modified-Since from what was remembered, none for a new page', () => {
  assert.deepEqual(conditionalHeaders(undefined), {});
  assert.deepEqual(conditionalHeaders({ etag: ETAG, lastModified: LM, links: [] }), { 'if-none-match': ETAG, 'if-modified-since': LM });
  assert.deepEqual(conditionalHeaders({ lastModified: LM, links: [] }), { 'if-modified-since': LM });
  assert.deepEqual(conditionalHeaders({ etag: ETAG, links: [] }), { 'if-none-match': ETAG });
});

test('not modified: only a 304 to a question we asked', () => {
  const r: Remembered = { etag: ETAG, links: [] };
  assert.equal(isNotModified(304, r), true);
  assert.equal(isNotModified(304, undefined), false, 'a 304 we did not ask for is an ordinary answer');
  assert.equal(isNotModified(304, { links: [] }), false);
  for (const s of [200, 206, 301, 404, 500]) assert.equal(isNotModified(s, r), false, `status ${s}`);
});

test('page keys: the 64-bit URL hash in hex, a valid store key, stable, distinct per URL', () => {
  const k = pageKey('http://127.0.0.1:8080/p/1.html');
  assert.match(k, /^page\.[0-9a-f]{16}$/);
  assert.equal(checkStoreKey(k), k);
  assert.equal(pageKey('http://127.0.0.1:8080/p/1.html'), k);
  const keys = new Set(Array.from({ length: 10_000 }, (_, i) => pageKey(`http://h/p/${i}.html`)));
  assert.equal(keys.size, 10_000);
});

const remembered = fc.record(
  {
    etag: fc.string({ minLength: 1, maxLength: 60 }),
    lastModified: fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }).map((d) => d.toUTCString()),
    links: fc.uniqueArray(fc.webUrl(), { maxLength: 50 }).map((l) => [...l].sort()),
  },
  { requiredKeys: ['links'] },
).filter((r) => r.etag !== undefined || r.lastModified !== undefined);

test('the stored value round-trips, through JSON as the store keeps it', () => {
  fc.assert(
    fc.property(remembered, (r) => {
      const v = encodeRemembered(r);
      assert.ok(v !== undefined);
      assert.deepEqual(decodeRemembered(JSON.parse(JSON.stringify(v)) as Json), { ...r });
    }),
    { numRuns: 300 },
  );
});

test('the stored value is small for an ordinary page, and refused past one value', () => {
  const site = Array.from({ length: 10 }, (_, i) => `http://127.0.0.1:39123/p/${i * 97}.html`);
  const v = encodeRemembered({ etag: ETAG, lastModified: LM, links: site })!;
  const bytes = Buffer.byteLength(JSON.stringify(v));
  assert.ok(bytes < 250, `10 links take ${bytes} B`);
  // Random text does not compress: enough of it cannot fit one value.
  const huge = Array.from({ length: 3000 }, (_, i) => `http://h/${i}/${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`);
  assert.equal(encodeRemembered({ etag: ETAG, links: huge.sort() }), undefined);
  assert.ok(Buffer.byteLength(JSON.stringify(huge)) > MAX_STATE_BYTES / 2);
});

test('anything else in the store reads as not remembered', () => {
  const good = encodeRemembered({ etag: ETAG, links: ['http://h/a'] }) as { [k: string]: Json };
  for (const bad of [undefined, null, 1, 'x', [], {}, { ...good, v: 2 }, { ...good, l: 'not base64 deflate' }, { ...good, e: undefined, e2: 1 }, { v: 1, l: good.l }]) {
    assert.equal(decodeRemembered(bad as Json), undefined, JSON.stringify(bad));
  }
});

test('conditional is on by default for a scheduled crawl only, and can be set either way', () => {
  const seeds = ['http://h/'];
  assert.equal(parseSpec({ seeds }).conditional, false);
  assert.equal(parseSpec({ seeds, schedule: { every: '1h' } }).conditional, true, 'spec.schedule is the runtime\'s, and turns it on');
  assert.equal(parseSpec({ seeds, schedule: { every: '1h' }, conditional: false }).conditional, false);
  assert.equal(parseSpec({ seeds, conditional: true }).conditional, true);
  assert.throws(() => parseSpec({ seeds, conditional: 'yes' }), /conditional must be true or false/);
});

class MapStore implements TaskStore {
  readonly map = new Map<string, Json>();
  failing = false;
  async get(key: string): Promise<Json | undefined> {
    if (this.failing) throw new Error('unavailable');
    return this.map.get(key);
  }
  async getShard(): Promise<Json | undefined> {
    throw new Error('not sharded');
  }
  async put(key: string, value: Json): Promise<void> {
    if (this.failing) throw new Error('unavailable');
    this.map.set(key, JSON.parse(JSON.stringify(value)) as Json);
  }
  async delete(key: string): Promise<void> {
    if (this.failing) throw new Error('unavailable');
    this.map.delete(key);
  }
}

const quietLog = (): TaskLog & { warnings: number } => {
  const l = { warnings: 0, debug() {}, info() {}, error() {}, warn() { l.warnings++; } };
  return l;
};

test('page memory: a run remembers, the next asks, a 304 is counted and gives back the links', async () => {
  const store = new MapStore();
  const log = quietLog();
  const run1 = new PageMemory(store, log);
  const url = 'http://h/p/1.html';
  assert.equal(await run1.recall(url), undefined);
  await run1.remember(url, { status: 200, etag: ETAG, lastModified: LM }, links);
  await run1.remember('http://h/none', { status: 200, etag: null, lastModified: null }, links);
  assert.equal(store.map.size, 1, 'a page without validators is not remembered');

  const run2 = new PageMemory(store, log);
  const asked = await run2.recall(url);
  assert.deepEqual(conditionalHeaders(asked), { 'if-none-match': ETAG, 'if-modified-since': LM });
  assert.equal(run2.unchanged(200, asked), undefined, 'changed: fetched, emitted, remembered anew');
  assert.deepEqual(run2.unchanged(304, asked)?.links, ['http://h/p/1.html', 'http://h/p/2.html']);
  assert.deepEqual(run2.counters(), { notModified: 1 });
  run2.restore(7);
  assert.equal(run2.notModified, 7);

  // A changed page whose links no longer fit is forgotten, so no later 304 stands for links we lack.
  const huge = Array.from({ length: 3000 }, (_, i) => `http://h/${i}/${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`);
  await run2.remember(url, { status: 200, etag: '"v2"', lastModified: null }, huge);
  assert.equal(await run2.recall(url), undefined);
  assert.equal(log.warnings, 0);

  store.failing = true;
  assert.equal(await run2.recall(url), undefined, 'a failed read is a full fetch');
  await run2.remember(url, { status: 200, etag: ETAG, lastModified: null }, []);
  assert.equal(log.warnings, 1, 'failures are logged once');
});

test('the checkpoint keeps notModified when there are any, and reads older checkpoints without it', () => {
  const base = { visited: ['http://h/a'], frontier: [{ url: 'http://h/b', depth: 1 }], pages: 3, errors: 0, skipped: 1 };
  assert.equal(decodeState(encodeState({ ...base, notModified: 9 })).notModified, 9);
  const without = encodeState(base) as { [k: string]: Json };
  assert.equal('notModified' in without, false, 'a crawl without it checkpoints as before');
  assert.equal(decodeState(without).notModified, undefined);
  assert.throws(() => decodeState({ ...without, notModified: -1 }), /notModified must be a count/);
});
