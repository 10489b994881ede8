// The web dashboard: its HTTP surface on every master of a real cluster
// (state, server-sent events, the vendor allow-list, methods, headers), the
// event stream's bounds on one served in-process, and then the page itself in
// a real headless Chromium: a resource added through the typed client appears
// without a reload, follows its worker's SIGKILL to the other worker, and the
// feed shows why; screenshots at 1280×800 and at phone width.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'nats';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { cluster, rawConnect, waitFor } from '../harness.js';
import { startNats } from '#devcluster/servers.js';
import { startDashboard } from '#web/server.js';
import { json } from '#protocol/codec.js';

/** The repository (this file runs from <build>/test/integration/). */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ARTIFACTS = join(ROOT, 'test-artifacts');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** get sends the path exactly as given (no client-side normalization of `..`). */
function get(base: string, path: string, method = 'GET'): Promise<Reply> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Sse reads a server-sent event stream: its events, and its comments (heartbeats). */
class Sse {
  readonly events: Array<{ event: string; data: string }> = [];
  comments = 0;
  ended = false;
  private buf = '';
  private constructor(readonly res: IncomingMessage, private readonly close: () => void) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => this.feed(chunk));
    res.on('end', () => (this.ended = true));
  }

  static open(base: string): Promise<Sse> {
    const u = new URL('/api/events', base);
    return new Promise((resolve, reject) => {
      const req = httpRequest(u, (res) => resolve(new Sse(res, () => req.destroy())));
      req.on('error', reject);
      req.end();
    });
  }

  data<T = Record<string, unknown>>(): T[] {
    return this.events.filter((e) => e.event === 'message').map((e) => JSON.parse(e.data) as T);
  }

  private feed(chunk: string): void {
    this.buf += chunk;
    for (let i = this.buf.indexOf('\n\n'); i >= 0; i = this.buf.indexOf('\n\n')) {
      const block = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) this.comments++;
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) this.events.push({ event, data: data.join('\n') });
    }
  }

  stop(): void {
    this.close();
  }
}

const isLoopback = (url: string): boolean => {
  const u = new URL(url);
  if (u.protocol === 'data:' || u.protocol === 'about:') return true;
  return ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
};

test('web dashboard', async (t) => {
  const c = await cluster({ masters: 2, workers: 2, http: true });
  const status = await c.ready(2);
  const client = await c.client();
  const follower = status.masters.find((m) => m !== status.leader)!;
  const base = c.httpUrl(follower);

  await t.test('GET /api/state: status and resources through any master', async () => {
    await client.add('web-a');
    for (const m of status.masters) {
      const r = await get(c.httpUrl(m), '/api/state');
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      assert.equal(r.headers['cache-control'], 'no-store');
      const s = JSON.parse(r.body.toString()) as { status: Record<string, unknown>; resources: Array<{ name: string }>; servedBy: string };
      assert.equal(s.servedBy, m);
      assert.equal(s.status.leader, status.leader);
      assert.deepEqual([...(s.status.masters as string[])].sort(), [...status.masters].sort());
      const workers = s.status.workers as Array<Record<string, unknown>>;
      assert.deepEqual(workers.map((w) => w.id).sort(), ['w1', 'w2']);
      for (const w of workers) for (const k of ['capacity', 'resources', 'kinds']) assert.ok(k in w, `worker has ${k}`);
      assert.ok(s.resources.some((x) => x.name === 'web-a'), 'the resource is listed');
    }
  });

  await t.test('GET /api/resources: one page, filtered by the leader; a bad filter is 400', async () => {
    await client.add('web-p1', { kind: 'nobody-runs-this' });
    const r = await get(base, '/api/resources?prefix=web-&state=pending');
    assert.equal(r.status, 200);
    const p = JSON.parse(r.body.toString()) as { resources: Array<{ name: string; state: string }>; next?: string };
    assert.deepEqual(p.resources.map((x) => x.name), ['web-p1']);
    const none = JSON.parse((await get(base, '/api/resources?worker=-&prefix=web-a')).body.toString()) as { resources: unknown[] };
    assert.deepEqual(none.resources, [], 'web-a is on a worker');
    assert.equal((await get(base, '/api/resources?state=bogus')).status, 400);
    await client.delete('web-p1');
  });

  await t.test('GET /api/events delivers an event published after connecting', async () => {
    const sse = await Sse.open(base);
    try {
      assert.match(String(sse.res.headers['content-type']), /^text\/event-stream/);
      assert.equal(sse.res.headers['cache-control'], 'no-store');
      await waitFor('the hello event', async () => sse.events.some((e) => e.event === 'hello'), 5000);
      assert.deepEqual(JSON.parse(sse.events.find((e) => e.event === 'hello')!.data), { servedBy: follower });
      const nc = await rawConnect(c.natsUrl);
      const mark = `m-${process.pid}-${Date.now()}`;
      nc.publish('events.test.web', json.encode({ kind: 'test.web', at: new Date().toISOString(), by: 'test', mark }));
      await client.add('web-sse');
      await waitFor('the published event', async () => sse.data<{ mark?: string }>().some((e) => e.mark === mark), 5000);
      await waitFor('the placement of web-sse', async () => sse.data<{ kind: string; name?: string }>().some((e) => e.kind === 'resource.placed' && e.name === 'web-sse'), 5000);
    } finally {
      sse.stop();
    }
  });

  await t.test('static files, the vendor allow-list, 404 and 405, security headers', async () => {
    const index = await get(base, '/');
    assert.equal(index.status, 200);
    assert.match(String(index.headers['content-type']), /^text\/html/);
    const csp = String(index.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self' 'sha256-[A-Za-z0-9+/=]+'(;|$)/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:|\*/);
    assert.equal(index.headers['x-content-type-options'], 'nosniff');
    for (const [path, type] of [
      ['/assets/app.js', /^text\/javascript/],
      ['/assets/style.css', /^text\/css/],
      ['/vendor/preact.mjs', /^text\/javascript/],
      ['/vendor/hooks.mjs', /^text\/javascript/],
      ['/vendor/htm.mjs', /^text\/javascript/],
    ] as const) {
      const r = await get(base, path);
      assert.equal(r.status, 200, path);
      assert.match(String(r.headers['content-type']), type, path);
      assert.ok(r.headers['content-security-policy'], `${path} has a CSP`);
    }
    const preact = createRequire(import.meta.url).resolve('preact');
    assert.deepEqual((await get(base, '/vendor/preact.mjs')).body, readFileSync(preact), 'preact is served from node_modules');
    for (const path of [
      '/vendor/../package.json',
      '/vendor/..%2fpackage.json',
      '/vendor/..%2f..%2fpackage.json',
      '/vendor/%2e%2e/package.json',
      '/assets/../../package.json',
      '/vendor/preact.js',
      '/vendor/react.mjs',
      '/vendor/',
      '/vendor/preact.mjs/x',
      '/assets/index.html',
      '/package.json',
      '/api/nothing',
    ]) {
      const r = await get(base, path);
      assert.equal(r.status, 404, `${path} is not served`);
      assert.doesNotMatch(r.body.toString(), /"name"\s*:\s*"gaffer"/, `${path} leaks nothing`);
    }
    for (const [path, method] of [['/api/state', 'POST'], ['/', 'DELETE'], ['/api/events', 'PUT'], ['/vendor/htm.mjs', 'POST']] as const) {
      const r = await get(base, path, method);
      assert.equal(r.status, 405, `${method} ${path}`);
      assert.match(String(r.headers.allow), /GET/);
    }
  });

  await t.test('an in-process dashboard: 503 without masters, heartbeats, a slow client is bounded, close ends streams', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gaffer-web-'));
    const nats = await startNats({ dir });
    const nc = await connect({ servers: nats.url });
    const d = await startDashboard({ nc, port: 0, id: 'solo', heartbeatMs: 200, stateTimeoutMs: 300 });
    try {
      const r = await get(d.url, '/api/state');
      assert.equal(r.status, 503);
      const body = JSON.parse(r.body.toString()) as { ok: boolean; error: { code: string; message: string } };
      assert.equal(body.ok, false);
      assert.equal(body.error.code, 'UNAVAILABLE', body.error.message);

      const fast = await Sse.open(d.url);
      await waitFor('a heartbeat', async () => fast.comments > 0, 5000);
      const slow = await Sse.open(d.url);
      await waitFor('the slow client to connect', async () => slow.events.some((e) => e.event === 'hello'), 5000);
      fast.stop();
      slow.res.pause(); // a browser that stops reading
      const n = 1200;
      const pad = 'x'.repeat(16 * 1024);
      for (let i = 0; i < n; i++) nc.publish('events.test.flood', json.encode({ kind: 'test.flood', at: '', by: 'test', i, pad }));
      // The flood went out on this connection and came back to the dashboard's subscription before this returns.
      await nc.flush();
      slow.res.resume();
      await waitFor('a resync after the dropped events', async () => slow.events.some((e) => e.event === 'resync'), 10_000);
      // Every flood event was handed to the stream before the client read again, so the count is exact.
      await waitFor('every flood event sent or dropped', async () => {
        const dropped = slow.events.filter((e) => e.event === 'resync').reduce((sum, e) => sum + Number((JSON.parse(e.data) as { dropped: number }).dropped), 0);
        return slow.data().length + dropped >= n;
      }, 10_000).catch(() => undefined);
      const dropped = slow.events.filter((e) => e.event === 'resync').reduce((sum, e) => sum + Number((JSON.parse(e.data) as { dropped: number }).dropped), 0);
      const got = slow.data<{ i: number }>().length;
      assert.ok(dropped > 0, 'events were dropped');
      assert.ok(got < n, `the slow client got ${got} of ${n}`);
      assert.equal(got + dropped, n, 'every event was either sent or counted as dropped');
      await d.close();
      await waitFor('the stream to end on close', async () => slow.ended, 5000);
    } finally {
      await d.close();
      await nc.close();
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  await t.test('the page in Chromium follows a worker loss live, at desktop and phone widths', async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const profile = mkdtempSync(join(tmpdir(), 'gaffer-chromium-'));
    let browser: Browser | undefined;
    let shown: Page | undefined;
    try {
      browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        userDataDir: profile,
        args: [
          '--no-sandbox',
          '--disable-dev-shm-usage',
          '--headless=new',
          '--disable-gpu',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      const page: Page = await browser.newPage();
      shown = page;
      const requests: string[] = [];
      const problems: string[] = [];
      let navigations = 0;
      page.on('request', (r) => requests.push(r.url()));
      page.on('pageerror', (e) => problems.push(`page error: ${(e as Error).message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console: ${m.text()}`);
      });
      page.on('framenavigated', (f) => {
        if (f === page.mainFrame()) navigations++;
      });
      await page.setViewport({ width: 1280, height: 800 });
      await page.goto(base, { waitUntil: 'domcontentloaded' });
      // Deadlines, not expectations: generous for a loaded machine.
      const deadline = { timeout: 20_000 };
      await page.waitForSelector('[data-testid="live"][data-state="live"]', deadline);
      await page.waitForFunction((l) => document.querySelector('[data-testid="leader"]')?.textContent === l, deadline, status.leader);
      await page.waitForSelector('.worker[data-worker="w1"]', deadline);
      await page.waitForSelector('.worker[data-worker="w2"]', deadline);

      // Some company for the screenshot: a few more, and one that waits for a kind nobody runs.
      for (const name of ['web-books', 'web-films', 'web-maps', 'web-songs']) await client.add(name);
      await client.add('web-waits', { kind: 'gpu' });
      const row = 'tr[data-resource="web-books"]';
      // Placed is enough: `running` is the leader's best-effort memory, and a leader that reloads its state forgets it.
      await page.waitForSelector(`${row}:not([data-worker=""])`, deadline);
      await page.waitForSelector('tr[data-resource="web-waits"][data-state="pending"]', deadline);
      const first = await page.$eval(row, (el) => el.getAttribute('data-worker'));
      assert.ok(first === 'w1' || first === 'w2', `on ${first}`);
      const other = first === 'w1' ? 'w2' : 'w1';

      // The filters narrow the table.
      // The name filter is a prefix the leader applies (it pages at any size).
      await page.type('[data-testid="filter-name"]', 'web-b');
      await page.waitForFunction(() => {
        const rows = [...document.querySelectorAll('tr[data-resource]')];
        return rows.length === 1 && rows[0]!.getAttribute('data-resource') === 'web-books';
      }, deadline);
      await page.$eval('[data-testid="filter-name"]', (el) => {
        (el as HTMLInputElement).value = '';
        el.dispatchEvent(new Event('input', { bubbles: true }));
      });
      await page.select('[data-testid="filter-state"]', 'pending');
      await page.waitForFunction(() => {
        const rows = [...document.querySelectorAll('tr[data-resource]')];
        return rows.length > 0 && rows.every((r) => r.getAttribute('data-state') === 'pending');
      }, deadline);
      await page.select('[data-testid="filter-state"]', '');
      await page.select('[data-testid="filter-worker"]', other);
      await page.waitForFunction((w) => {
        const rows = [...document.querySelectorAll('tr[data-resource]')];
        return rows.length > 0 && rows.every((r) => r.getAttribute('data-worker') === w);
      }, deadline, other);
      await page.select('[data-testid="filter-worker"]', '');
      await page.waitForSelector(row, deadline);

      // A sharded resource's row opens to its shards.
      await client.add('web-sharded', { shards: 2 });
      const toggle = 'tr[data-resource="web-sharded"] [data-testid="shards-toggle"]';
      await page.waitForSelector(toggle, deadline);
      await page.click(toggle);
      await page.waitForSelector('tr.shard-row[data-shard="web-sharded/1"]', deadline);

      await c.workers.get(first)!.kill();
      await page.waitForSelector(`${row}[data-worker="${other}"]`, deadline);
      await page.waitForSelector('[data-testid="events"] li[data-kind="worker.lost"]', deadline);
      await page.waitForFunction(
        (name) => [...document.querySelectorAll('[data-testid="events"] li[data-kind="resource.moved"]')].some((li) => li.textContent?.includes(name)),
        deadline,
        'web-books',
      );
      await page.waitForFunction((w) => !document.querySelector(`.worker[data-worker="${w}"]`), deadline, first);
      assert.equal(navigations, 1, 'the page was never reloaded');
      assert.equal(await page.$eval('[data-testid="live"]', (el) => el.getAttribute('data-state')), 'live');
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

      // (isMobile or hasTouch would make puppeteer reload the page; a narrow window is what the CSS sees.)
      await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 2 });
      await page.waitForFunction(() => window.innerWidth === 390, deadline);
      await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => done(undefined))));
      const fit = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        inner: window.innerWidth,
        thead: getComputedStyle(document.querySelector('table.resources thead')!).display,
      }));
      assert.ok(fit.scroll <= fit.inner, `nothing overflows at phone width (scrollWidth ${fit.scroll} > ${fit.inner})`);
      assert.equal(fit.thead, 'none', 'the resource table collapses into cards');
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true });

      assert.ok(requests.length > 0);
      assert.deepEqual(requests.filter((u) => !isLoopback(u)), [], 'the browser asked nothing of any other host');
      assert.ok(requests.some((u) => u.endsWith('/vendor/preact.mjs')), 'preact came from the master');
      assert.deepEqual(problems, [], 'no script errors and no CSP violations');
    } catch (err) {
      // What the page showed when it failed, for the post-mortem.
      await shown?.screenshot({ path: join(ARTIFACTS, 'dashboard-failure.png'), fullPage: true }).catch(() => undefined);
      throw err;
    } finally {
      await browser?.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
