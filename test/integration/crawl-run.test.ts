// The crawl kind end to end against the loopback fixture site, through a
// fake TaskContext that records what the kind emits, checkpoints and reports.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_STATE_BYTES, type Json, type TaskContext } from '#kinds/api.js';
import { crawl } from '#actors/worker/kinds/crawl/index.js';
import { decodeState } from '#actors/worker/kinds/crawl/checkpoint.js';
import { ERROR_PATH, REDIRECT_PATH, REDIRECT_TARGET, SLOW_PATH, startSite } from '../fixtures/site.js';
import { expect } from '../fixtures/crawl-expect.js';

interface Emitted {
  item: { [k: string]: Json };
  id: string | undefined;
}

interface Fake {
  ctx: TaskContext;
  abort: AbortController;
  emits: Emitted[];
  checkpoints: Json[];
  progress: Json[];
  warnings: unknown[];
}

function fake(
  spec: { [k: string]: Json },
  opts: {
    checkpointed?: Json;
    onEmit?: (f: Fake) => void | Promise<void>;
    checkpoint?: (state: Json, f: Fake) => Promise<void>;
  } = {},
): Fake {
  const abort = new AbortController();
  const f: Fake = { abort, emits: [], checkpoints: [], progress: [], warnings: [], ctx: undefined as unknown as TaskContext };
  const warn = (o: object | string, m?: string): void => void f.warnings.push([o, m]);
  f.ctx = {
    resource: { name: 'crawl-test', id: 'r1' },
    spec,
    signal: abort.signal,
    log: { debug: () => {}, info: () => {}, warn, error: warn },
    attempt: opts.checkpointed === undefined ? 1 : 2,
    checkpointed: opts.checkpointed,
    checkpoint: async (state) => {
      assert.ok(Buffer.byteLength(JSON.stringify(state)) <= MAX_STATE_BYTES, 'checkpoint over MAX_STATE_BYTES');
      if (opts.checkpoint) await opts.checkpoint(state, f);
      f.checkpoints.push(state);
    },
    progress: (v) => void f.progress.push(v),
    shard: { index: 0, count: 1 }, send: async () => {}, inbox: { async *[Symbol.asyncIterator]() {} }, busy: () => () => {},
    emit: async (item, o) => {
      assert.ok(Buffer.byteLength(JSON.stringify(item)) <= MAX_STATE_BYTES, 'item over MAX_STATE_BYTES');
      f.emits.push({ item: item as { [k: string]: Json }, id: o?.id });
      await opts.onEmit?.(f);
    },
  };
  return f;
}

const run = async (f: Fake): Promise<{ pages: number; errors: number; skipped: number; parked: string[] }> =>
  (await crawl.run(f.ctx)) as { pages: number; errors: number; skipped: number; parked: string[] };

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const pathOf = (url: string): string => {
  const u = new URL(url);
  return u.pathname + u.search;
};

test('crawls the whole fixture site once, politely and completely', async () => {
  const site = await startSite({ pages: 300 });
  try {
    const f = fake({
      kind: 'crawl',
      restart: 'always',
      seeds: [site.seed],
      maxDepth: 100,
      maxPages: 100_000,
      perHostRps: 1e6,
      concurrency: 8,
      // Small, so the page that never answers costs little; not so small that
      // an ordinary page on a loaded machine times out too.
      timeoutMs: 1500,
      extract: { heading: 'h1.name', price: '.price', absent: '.nope' },
    });
    const result = await run(f);
    const want = expect(site, { robots: true, maxDepth: 100 });

    // Every allowed reachable page exactly once, with its canonical URL as id.
    const ids = f.emits.map((e) => e.id!);
    assert.equal(new Set(ids).size, ids.length, 'a page was emitted twice');
    for (const e of f.emits) assert.equal(e.id, e.item.url);
    assert.deepEqual(new Set(ids.map(pathOf)), want.emitted);
    for (const id of ids) assert.ok(id.startsWith(`${site.url}/`), `unexpected id ${id}`);

    // Every request says who is asking.
    for (const r of site.log) assert.match(r.ua, /^gaffer-crawler\/\S+ \(\+https:\/\/github\.com\/gaffer\)$/);

    // Robots: fetched once, and nothing under /private/ was asked for.
    assert.equal(site.hits.get('/robots.txt'), 1);
    const privates = [...site.hits.keys()].filter((p) => p.startsWith('/private/'));
    assert.deepEqual(privates, []);

    // Error statuses are recorded, not dropped.
    const byPath = new Map(f.emits.map((e) => [pathOf(e.item.url as string), e.item]));
    assert.equal(byPath.get(ERROR_PATH)?.status, 500);
    const missing = [...want.emitted].filter((p) => p.startsWith('/missing/'));
    assert.ok(missing.length > 3);
    for (const p of missing) assert.equal(byPath.get(p)?.status, 404, p);

    // The redirect target, also linked directly, is fetched once; the redirect itself emits nothing.
    assert.equal(site.hits.get(REDIRECT_PATH), 1);
    assert.equal(site.hits.get(REDIRECT_TARGET), 1);
    assert.ok(!byPath.has(REDIRECT_PATH));

    // The page that never answers times out and counts as an error, not a hang.
    assert.equal(site.hits.get(SLOW_PATH), 1);
    assert.ok(!byPath.has(SLOW_PATH));
    assert.deepEqual(want.failed, new Set([SLOW_PATH]));

    // No page fetched twice.
    const twice = [...site.hits].filter(([, n]) => n > 1);
    assert.deepEqual(twice, []);

    // Counters agree with what was emitted and what was left alone.
    assert.deepEqual(result, { pages: want.emitted.size, errors: 1, skipped: want.skipped.size, parked: [] });
    assert.equal(result.pages, f.emits.length);

    // Item contents.
    const root = byPath.get('/p/0.html')!;
    assert.equal(root.status, 200);
    assert.equal(root.depth, 0);
    assert.equal(root.title, 'Page /p/0.html');
    assert.deepEqual(root.fields, { heading: 'Heading /p/0.html', price: '0', absent: null });
    assert.ok(!Number.isNaN(Date.parse(root.fetchedAt as string)));
    const links = root.links as string[];
    assert.equal(new Set(links).size, links.length, 'links not deduped');
    assert.ok(links.includes(`${site.url}/p/2.html?ref=home`));
    assert.ok(links.includes('https://example.invalid/y'));
    for (const l of links) assert.ok(!l.includes('#') && !l.startsWith('mailto:'), l);
    const rootLinks = new Set(site.graph.get('/p/0.html')!.links.map((p) => `${site.url}${p}`));
    assert.deepEqual(new Set(links.filter((l) => l.startsWith(site.url))), rootLinks);
    assert.equal(byPath.get('/p/5.html')?.fields && (byPath.get('/p/5.html')!.fields as { price: string }).price, '15');

    // Progress after each page; checkpoints at least every 50 pages, all decodable.
    assert.ok(f.progress.length >= result.pages + result.errors);
    assert.deepEqual(f.progress.at(-1), { fetched: result.pages, queued: 0, errors: 1, parked: [] });
    assert.ok(f.checkpoints.length >= Math.floor(result.pages / 50), `only ${f.checkpoints.length} checkpoints`);
    for (const c of f.checkpoints) decodeState(c);
    assert.equal(f.warnings.length, 1, JSON.stringify(f.warnings)); // the timeout
  } finally {
    await site.close();
  }
});

test('maxDepth and maxPages bound the crawl, and what they cut is counted as skipped', async () => {
  const site = await startSite({ pages: 200, bad: false });
  try {
    const shallow = fake({ seeds: [site.seed], maxDepth: 1, perHostRps: 1e6, concurrency: 4 });
    const r1 = await run(shallow);
    const want = expect(site, { robots: true, maxDepth: 1 });
    assert.deepEqual(new Set(shallow.emits.map((e) => pathOf(e.id!))), want.emitted);
    for (const e of shallow.emits) assert.equal(e.item.depth, e.id === site.seed ? 0 : 1);
    assert.deepEqual(r1, { pages: want.emitted.size, errors: 0, skipped: want.skipped.size, parked: [] });

    const capped = fake({ seeds: [site.seed], maxDepth: 100, maxPages: 25, perHostRps: 1e6, concurrency: 4 });
    const r2 = await run(capped);
    assert.equal(r2.pages, 25);
    assert.equal(capped.emits.length, 25);
    const requests = site.log.filter((r) => r.path !== '/robots.txt').length;
    assert.equal(requests, r1.pages + 25, 'fetched beyond maxPages');
    assert.ok(r2.skipped > 0);
  } finally {
    await site.close();
  }
});

test('a redirect is followed hop by hop and emitted once, under its target URL', async () => {
  const site = await startSite({ pages: 20 });
  try {
    // Alone: the target is claimed and fetched within the redirect's own fetch.
    const alone = fake({ seeds: [`${site.url}${REDIRECT_PATH}`], maxDepth: 0, perHostRps: 1e6 });
    const r = await run(alone);
    assert.deepEqual(alone.emits.map((e) => e.id), [`${site.url}${REDIRECT_TARGET}`]);
    assert.equal(alone.emits[0]!.item.depth, 0);
    assert.equal(alone.emits[0]!.item.status, 200);
    assert.equal(site.hits.get(REDIRECT_PATH), 1);
    assert.equal(site.hits.get(REDIRECT_TARGET), 1);
    assert.equal(r.pages, 1);
    assert.equal(r.errors, 0);

    // Also queued on its own: the redirect chain stops and the target is fetched once.
    site.hits.clear();
    const both = fake({ seeds: [`${site.url}${REDIRECT_PATH}`, `${site.url}${REDIRECT_TARGET}`], maxDepth: 0, perHostRps: 1e6 });
    await run(both);
    assert.deepEqual(both.emits.map((e) => e.id), [`${site.url}${REDIRECT_TARGET}`]);
    assert.equal(site.hits.get(REDIRECT_PATH), 1);
    assert.equal(site.hits.get(REDIRECT_TARGET), 1);
  } finally {
    await site.close();
  }
});

test('include and exclude filter what is followed, but not the seeds', async () => {
  const site = await startSite({ pages: 100, bad: false });
  try {
    const f = fake({
      seeds: [site.seed],
      maxDepth: 100,
      perHostRps: 1e6,
      include: ['/p/\\d+\\.html$'],
      exclude: ['/p/\\d*7\\.html$', '/p/0\\.html$'],
    });
    await run(f);
    const paths = f.emits.map((e) => pathOf(e.id!));
    assert.ok(paths.length > 50);
    assert.ok(paths.includes('/p/0.html'), 'an excluded seed was not fetched');
    for (const p of paths) assert.match(p, /^\/p\/\d+\.html$/);
    for (const p of paths) assert.doesNotMatch(p, /7\.html$/);
    for (const p of site.hits.keys()) assert.ok(p === '/robots.txt' || /^\/p\/\d*[0-689]\.html$/.test(p), p);
  } finally {
    await site.close();
  }
});

test('abort and resume from the last checkpoint: every page once, few fetched twice', async (t) => {
  const site = await startSite({ pages: 300, bad: false });
  try {
    const spec = { seeds: [site.seed], maxDepth: 100, maxPages: 100_000, perHostRps: 1e6, concurrency: 8 };
    const first = fake(spec, { onEmit: (f) => void (f.emits.length === 120 && f.abort.abort()) });
    const r1 = await run(first);
    assert.ok(first.abort.signal.aborted);
    assert.ok(r1.pages >= 120 && r1.pages < 300, `first run: ${JSON.stringify(r1)}`);
    const last = first.checkpoints.at(-1);
    assert.ok(last !== undefined, 'no checkpoint on abort');
    const state = decodeState(last);
    assert.equal(state.pages, r1.pages);
    assert.ok(state.frontier.length > 0);

    const second = fake(spec, { checkpointed: last });
    const r2 = await run(second);

    const want = expect(site, { robots: true, maxDepth: 100 });
    const all = [...first.emits, ...second.emits];
    const ids = new Set(all.map((e) => e.id!));
    assert.deepEqual(new Set([...ids].map(pathOf)), want.emitted);
    for (const e of all) assert.equal(e.id, e.item.url, 'an id is not the canonical URL');
    assert.equal(r2.pages, want.emitted.size, 'counters carried over from the checkpoint');

    // Only what was in flight at the abort may be fetched again.
    const refetched = [...site.hits].filter(([p, n]) => p !== '/robots.txt' && n > 1);
    assert.ok(refetched.length <= spec.concurrency, `refetched ${refetched.length}: ${JSON.stringify(refetched)}`);
    const emittedTwice = all.length - ids.size;
    t.diagnostic(`first run ${first.emits.length} emits, resume ${second.emits.length}; fetched twice ${refetched.length}, emitted twice ${emittedTwice}`);
    assert.ok(emittedTwice <= spec.concurrency, `emitted twice: ${emittedTwice}`);
    for (const e of first.emits) assert.equal(site.hits.get(pathOf(e.id!)), 1, `${e.id} fetched again after being checkpointed`);
  } finally {
    await site.close();
  }
});

test('abort during a page that never answers returns promptly and checkpoints it for the resume', { timeout: 5000 }, async () => {
  const site = await startSite({ pages: 10 });
  try {
    const slow = `${site.url}${SLOW_PATH}`;
    const f = fake({ seeds: [slow], timeoutMs: 60_000, perHostRps: 1e6 });
    const running = run(f);
    await waitFor(() => site.hits.get(SLOW_PATH) === 1, 'the slow page to be requested');
    f.abort.abort();
    await running;
    assert.equal(f.emits.length, 0);
    const state = decodeState(f.checkpoints.at(-1));
    assert.deepEqual(state.frontier, [{ url: slow, depth: 0 }]);
    assert.deepEqual(state.visited, []);
  } finally {
    await site.close();
  }
});

test('a refused checkpoint stops the crawl at once and fails it', async () => {
  const site = await startSite({ pages: 300, bad: false });
  try {
    let refusedAt = -1;
    const f = fake(
      { seeds: [site.seed], maxDepth: 100, perHostRps: 1e6, concurrency: 4 },
      {
        checkpoint: async (_s, f) => {
          refusedAt = f.emits.length;
          throw new Error('CheckpointRefused: not the owner');
        },
      },
    );
    await assert.rejects(run(f), /checkpoint refused.*not the owner/);
    assert.ok(refusedAt >= 50);
    assert.ok(f.emits.length - refusedAt <= 4, `kept emitting: ${f.emits.length - refusedAt}`);
  } finally {
    await site.close();
  }
});

test('a failed emit fails the attempt instead of losing the page', async () => {
  const site = await startSite({ pages: 100, bad: false });
  try {
    const f = fake(
      { seeds: [site.seed], maxDepth: 100, perHostRps: 1e6, concurrency: 4 },
      {
        onEmit: (f) => {
          if (f.emits.length === 10) throw new Error('storage down');
        },
      },
    );
    await assert.rejects(run(f), /emit failed for http:\/\/127\.0\.0\.1:\d+\/p\/\d+\.html: storage down/);
    assert.ok(f.emits.length < 20);
  } finally {
    await site.close();
  }
});

test('a bad spec is rejected with a message naming the field, before any request', async () => {
  const site = await startSite({ pages: 5 });
  try {
    const seeds = [site.seed];
    const cases: Array<[{ [k: string]: Json }, RegExp]> = [
      [{}, /seeds must be a non-empty list/],
      [{ seeds: [] }, /seeds must be a non-empty list/],
      [{ seeds: site.seed }, /seeds must be a non-empty list/],
      [{ seeds: ['not a url'] }, /seeds\[0\] is not a URL/],
      [{ seeds: [site.seed, 'ftp://example.com/'] }, /seeds\[1\] must be http or https/],
      [{ seeds, include: ['('] }, /include\[0\] is not a valid regular expression/],
      [{ seeds, exclude: 'x' }, /exclude must be a list/],
      [{ seeds, exclude: [5] }, /exclude\[0\] must be a string/],
      [{ seeds, maxPage: 10 }, /unknown field "maxPage"/],
      [{ seeds, maxPages: -1 }, /maxPages must be an integer >= 1/],
      [{ seeds, maxDepth: -1 }, /maxDepth must be an integer >= 0/],
      [{ seeds, maxDepth: 1.5 }, /maxDepth must be an integer/],
      [{ seeds, perHostRps: 0 }, /perHostRps must be a number > 0/],
      [{ seeds, perHostRps: -2 }, /perHostRps must be a number > 0/],
      [{ seeds, concurrency: 0 }, /concurrency must be an integer >= 1/],
      [{ seeds, timeoutMs: -5 }, /timeoutMs must be a number > 0/],
      [{ seeds, timeoutMs: 1e12 }, /timeoutMs must be at most 2147483647/],
      [{ seeds, sameHost: 'yes' }, /sameHost must be true or false/],
      [{ seeds, extract: ['h1'] }, /extract must be an object/],
      [{ seeds, extract: { price: 'div[' } }, /extract\.price is not a valid CSS selector/],
    ];
    for (const [spec, message] of cases) {
      await assert.rejects(run(fake(spec)), (err: Error) => {
        assert.match(err.message, message, `spec ${JSON.stringify(spec)}`);
        assert.match(err.message, /^crawl spec: /);
        return true;
      });
    }
    assert.equal(site.hits.size, 0, 'a bad spec still made requests');

    await assert.rejects(run(fake({ seeds }, { checkpointed: { v: 99 } })), /checkpoint: unsupported version 99/);
    assert.equal(site.hits.size, 0);

    // The runtime's own fields ride along in the spec and are not the kind's business.
    const ok = fake({ seeds, kind: 'crawl', restart: 'on-failure', constraints: {}, prefer: {}, rebalance: false, maxDepth: 0 });
    const r = await run(ok);
    assert.equal(r.pages, 1);
    assert.equal(r.errors, 0);
  } finally {
    await site.close();
  }
});
