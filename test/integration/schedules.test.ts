// Schedules against real processes: overlap skip, queue and replace on an
// `every: "1s"` schedule (the shortest a schedule allows) of a task that
// takes 1.5 s, the three side by side; the schedule operations
// over raw NATS requests; and the leader SIGKILLed within 100 ms of a fire
// time, again and again, with every fire run exactly once (the record's run
// history is the judge: events from a killed leader may be lost, the record
// may not). SCHEDULE_KILLS sets how many kills (default 5; the run
// is SCHEDULE_KILLS=20).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { cluster, rawConnect, Recorder, waitFor } from '../harness.js';
import { json } from '#protocol/codec.js';
import { readResults } from '#platform/nats/results.js';
import type { Json, Resource } from '#protocol/messages.js';
import type { GafferClient } from '#client/client.js';
import type { LocalCluster } from '#devcluster/cluster.js';
import { request as httpRequest } from 'node:http';
import { execFile } from 'node:child_process';
import { CLI_PATH } from '#devcluster/cluster.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';

const EXAMPLES = fileURLToPath(new URL('../../../examples/kinds.mjs', import.meta.url));
const KILLS = Number(process.env.SCHEDULE_KILLS ?? 5);

type Ev = { kind: string; name: string; run?: number; fireTime?: string; why?: string; count?: number; at: string; worker?: string; id?: string; endedAt?: string };

/** The overlap cases' interval, and a task that takes 1.5 of them: three steps of half an interval, each emitting one result. */
const EVERY_MS = 1000;
const EVERY = `${EVERY_MS / 1000}s`;
const longerThanEvery = (schedule: { [k: string]: Json }) => ({ kind: 'countdown', from: 3, stepMs: EVERY_MS / 2, schedule });

async function start(): Promise<{ c: LocalCluster; client: GafferClient; events: Recorder<Ev> }> {
  const c = await cluster({ masters: 3, workers: 0, ttlSeconds: 2 });
  for (const id of ['w1', 'w2']) c.startWorker(id, ['--tasks', EXAMPLES, '--stop-grace-ms', '500']);
  await c.ready(2);
  const client = await c.client();
  const events = await Recorder.start<Ev>(c.natsUrl, 'events.>');
  return { c, client, events };
}

const of = (events: Recorder<Ev>, kind: string, name: string): Ev[] => events.items.map((e) => e.data).filter((e) => e.kind === kind && e.name === name);

test('schedules: overlap policies, operations over raw NATS, and results per run', async (t) => {
  const { c, client, events } = await start();
  // The three overlap cases use their own resources and judge only their own
  // events: they are added together and run side by side on the two workers,
  // rather than one after the other; each case then waits for its own runs.
  await client.add('skip', longerThanEvery({ every: EVERY }));
  await client.add('queue', longerThanEvery({ every: EVERY, overlap: 'queue' }));
  await client.add('replace', longerThanEvery({ every: EVERY, overlap: 'replace' }));

  await t.test('skip: a 1.5 s run on a 1 s schedule runs at most every other fire; the fires between are skipped with why', async () => {
    await waitFor('3 completed runs', async () => of(events, 'run.completed', 'skip').length >= 3, 30000);
    await client.schedule('pause', { name: 'skip' });
    const fired = of(events, 'schedule.fired', 'skip').map((e) => Date.parse(e.fireTime!));
    const skipped = of(events, 'schedule.skipped', 'skip');
    for (let i = 1; i < fired.length; i++) {
      assert.ok(fired[i]! - fired[i - 1]! >= 2 * EVERY_MS, `run ${i + 1} fired ${fired[i]! - fired[i - 1]!} ms after run ${i}: a fire during a run must be skipped`);
      for (let f = fired[i - 1]! + EVERY_MS; f < fired[i]!; f += EVERY_MS) {
        const s = skipped.find((x) => Date.parse(x.fireTime!) === f);
        assert.ok(s, `the fire at ${new Date(f).toISOString()} is said to be skipped`);
        assert.match(s.why!, /^overlap: run \d+ is still going$/);
      }
    }
    const r = await client.get('skip');
    assert.ok(r.schedule!.skipped >= 2);
    assert.ok(r.runs!.every((x) => x.state === 'completed'));
  });

  await t.test('queue: fires wait and run back to back, none skipped', async () => {
    await waitFor('3 completed runs', async () => of(events, 'run.completed', 'queue').length >= 3, 30000);
    await client.schedule('pause', { name: 'queue' });
    const fired = of(events, 'schedule.fired', 'queue');
    const completed = of(events, 'run.completed', 'queue');
    assert.equal(of(events, 'schedule.skipped', 'queue').length, 0);
    for (let i = 1; i < 3; i++) {
      assert.equal(Date.parse(fired[i]!.fireTime!) - Date.parse(fired[i - 1]!.fireTime!), EVERY_MS, 'consecutive fire times, none lost');
      assert.ok(Date.parse(fired[i]!.at) >= Date.parse(completed[i - 1]!.at), `run ${i + 1} starts after run ${i} ended`);
    }
  });

  await t.test('replace: each fire stops the running run before the new one starts', async () => {
    const started = () => of(events, 'task.started', 'replace');
    await waitFor('3 runs started', async () => started().length >= 3, 30000);
    await client.schedule('pause', { name: 'replace' });
    const stopped = of(events, 'task.stopped', 'replace');
    const s = started();
    for (let i = 1; i < 3; i++) {
      const stop = stopped.find((x) => x.worker === s[i - 1]!.worker && Date.parse(x.at) >= Date.parse(s[i - 1]!.at));
      assert.ok(stop, `attempt ${i} was stopped`);
      assert.ok(Date.parse(stop.endedAt ?? stop.at) <= Date.parse(s[i]!.at), `attempt ${i} ended (${stop.at}) before attempt ${i + 1} started (${s[i]!.at})`);
    }
    await waitFor('replaced runs in the history', async () => ((await client.get('replace')).runs ?? []).some((r) => r.state === 'replaced'));
  });

  await t.test('pause, resume and trigger over raw NATS requests; results of one run', async () => {
    const nc = await rawConnect(c.natsUrl);
    const req = async (subject: string, body: unknown) => json.decode((await nc.request(subject, json.encode(body), { timeout: 5000 })).data) as Record<string, any>;
    await client.add('ops', { kind: 'countdown', from: 2, stepMs: 50, schedule: { every: '1h', paused: true, note: 'created paused' } });
    let r = (await req('resource.get', { name: 'ops' })).resource as Resource;
    assert.equal(r.state, 'scheduled');
    assert.deepEqual([r.schedule!.paused, r.schedule!.note, r.schedule!.next], [true, 'created paused', []]);
    const resumed = await req('schedule.resume', { name: 'ops', note: 'go' });
    assert.equal(resumed.ok, true);
    assert.equal(resumed.resource.schedule.next.length, 3);
    const again = await req('schedule.resume', { name: 'ops' });
    assert.deepEqual([again.ok, again.error.code], [false, 'CONFLICT']);
    const bad = await req('schedule.backfill', { name: 'ops', from: 'yesterday', to: 'today' });
    assert.deepEqual([bad.ok, bad.error.code], [false, 'BAD_REQUEST']);
    for (const _ of [1, 2]) {
      const trig = await req('schedule.trigger', { name: 'ops' });
      assert.equal(trig.fired, 'started');
      await waitFor('the triggered run to end', async () => ((await client.get('ops')).schedule!.running === undefined ? true : undefined));
    }
    r = await client.get('ops');
    assert.deepEqual(r.runs!.map((x) => [x.run, x.cause, x.state]), [[2, 'trigger', 'completed'], [1, 'trigger', 'completed']]);
    // Both runs emitted steps 2 and 1 under the same item ids: each run keeps its own.
    const all: unknown[] = [];
    for await (const x of readResults(nc, 'ops')) all.push(x);
    assert.equal(all.length, 4);
    const run2: Array<{ run?: number; item: unknown }> = [];
    for await (const x of readResults(nc, 'ops', { run: 2 })) run2.push(x);
    assert.deepEqual(run2.map((x) => [x.run, x.item]), [[2, { n: 2 }], [2, { n: 1 }]]);
  });

  await t.test('the CLI: schedule ls, pause, backfill, ls with NEXT FIRE, results --run', async () => {
    const gaffer = (...args: string[]) =>
      new Promise<{ code: number; out: string; err: string }>((resolve) =>
        execFile(process.execPath, [CLI_PATH, '--nats', c.natsUrl, ...args], { timeout: 60000 }, (e, out, err) => resolve({ code: e ? Number(e.code) : 0, out, err })),
      );
    const ls = await gaffer('schedule', 'ls');
    assert.equal(ls.code, 0, ls.err);
    assert.match(ls.out, /^NAME\s+SCHEDULE\s+OVERLAP\s+NEXT FIRE\s+RUNNING\s+LAST RUN\s+SKIPPED\s+NOTE/);
    assert.match(ls.out, /\nops\s+every 1h\s+skip\s+\d{4}-\S+ \(in \d+[smh]\)\s+-\s+run 2 completed/);
    const all = await gaffer('ls');
    assert.match(all.out.split('\n')[0]!, /NEXT FIRE$/);
    const res = await gaffer('results', 'ops', '--run', '1', '--json');
    assert.deepEqual(res.out.trim().split('\n').map((l) => (JSON.parse(l) as { run: number }).run), [1, 1]);
    const paused = await gaffer('schedule', 'pause', 'ops', '--note', 'by the CLI');
    assert.equal(paused.code, 0, paused.err);
    const twice = await gaffer('schedule', 'pause', 'ops');
    assert.equal(twice.code, 1);
    assert.match(twice.err, /CONFLICT: ops is paused already/);
    const now = Date.now();
    const bf = await gaffer('schedule', 'backfill', 'ops', '--from', new Date(now - 3 * 3_600_000).toISOString(), '--to', new Date(now).toISOString(), '--overlap', 'queue', '--json');
    assert.equal(bf.code, 0, bf.err);
    assert.deepEqual((({ fires, started, queued }) => [fires, started, queued])(JSON.parse(bf.out) as Record<string, number>), [3, 1, 2]);
    await waitFor('the backfilled runs to end', async () => {
      const r = await client.get('ops');
      return r.runs!.filter((x) => x.cause === 'backfill' && x.state === 'completed').length === 3 ? true : undefined;
    });
  });
});

test(`schedules: the leader SIGKILLed within 100 ms of a fire time, ${KILLS} times in a row: each fire ran exactly once`, async () => {
  const { c, client } = await start();
  // Short runs, queued if a failover makes one late, so every fire time must show up as exactly one run.
  await client.add('once', { kind: 'countdown', from: 1, stepMs: 50, schedule: { every: '2s', overlap: 'queue', history: 100 } });
  // A fire can land between the add and this read; it shows in runs then, since it is recorded as it fires.
  const added = await client.get('once');
  const first = Math.min(Date.parse(added.schedule!.next[0]!), ...(added.runs ?? []).map((x) => Date.parse(x.fireTime)));
  let last = first;
  for (let i = 0; i < KILLS; i++) {
    const { leader } = await waitFor('a leader', () => client.status().catch(() => undefined), 20000);
    // The next fire at least a second away, so the kill lands near it and not during the last failover.
    const next = ((await client.get('once')).schedule!.next.map(Date.parse)).find((t) => t - Date.now() > 1000)!;
    const killAt = next - 50 + Math.floor(Math.random() * 100);
    await sleep(Math.max(0, killAt - Date.now()));
    await c.masters.get(leader)!.kill();
    last = Math.max(last, next);
    c.masters.get(leader)!.start();
  }
  const expected: number[] = [];
  for (let f = first; f <= last; f += 2000) expected.push(f);
  const runs = await waitFor('every fire up to the last kill to have run', async () => {
    const r = await client.get('once').catch(() => undefined);
    const done = (r?.runs ?? []).filter((x) => x.state === 'completed');
    return done.some((x) => Date.parse(x.fireTime) >= last) ? r!.runs! : undefined;
  }, 60000);
  await client.schedule('pause', { name: 'once' });
  const times = runs.map((x) => Date.parse(x.fireTime)).filter((t) => t <= last);
  assert.equal(new Set(times).size, times.length, `a fire time ran twice: ${runs.map((x) => x.fireTime).join(' ')}`);
  assert.deepEqual([...times].sort((a, b) => a - b), expected, 'every fire time from the first to the last kill ran, none lost');
  assert.deepEqual(runs.map((x) => x.run), runs.map((_, i) => runs[0]!.run - i), 'run numbers are consecutive');
});

/** post sends a dashboard write with the given headers; resolves with the status and the JSON body. */
function post(url: string, path: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; body: Record<string, any> }> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = httpRequest(new URL(path, url), { method: 'POST', headers: { ...headers, 'Content-Length': String(data.length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

test('the dashboard shows schedules and pauses one with its button; writes from anywhere but its own page are refused', async () => {
  const c = await cluster({ masters: 1, workers: 1, ttlSeconds: 2, http: true });
  await c.ready(1);
  const client = await c.client();
  await client.add('dash', { schedule: { every: '1h' } });
  const url = c.httpUrl('m1');
  const origin = url.replace(/\/$/, '');
  const json = { 'Content-Type': 'application/json' };
  const refused = [
    await post(url, '/api/schedule/pause', { name: 'dash' }, { ...json, Origin: 'http://evil.example' }),
    await post(url, '/api/schedule/pause', { name: 'dash' }, { ...json }),
    await post(url, '/api/schedule/pause', { name: 'dash' }, { 'Content-Type': 'text/plain', Origin: origin }),
    await post(url, '/api/schedule/pause', { name: 'dash' }, { ...json, Origin: 'http://rebound.example:1', Host: 'rebound.example:1' }),
  ];
  assert.deepEqual(refused.map((r) => r.status), [403, 403, 403, 403]);
  assert.equal((await client.get('dash')).schedule!.paused, false, 'nothing refused was written');

  const profile = mkdtempSync(join(tmpdir(), 'gaffer-chromium-'));
  let browser: Browser | undefined;
  try {
    browser = await puppeteer.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      headless: true,
      userDataDir: profile,
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--headless=new', '--disable-gpu', '--no-first-run'],
    });
    const page = await browser.newPage();
    await page.goto(url);
    const row = '[data-schedule="dash"]';
    await page.waitForSelector(`${row}[data-paused="false"]`, { timeout: 20000 });
    const next = await page.$eval(`${row} [data-testid="schedule-next"]`, (el) => el.textContent ?? '');
    assert.match(next, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}/, 'the next fire is shown');
    await page.click(`${row} [data-testid="schedule-toggle"]`);
    await page.waitForSelector(`${row}[data-paused="true"]`, { timeout: 20000 });
    assert.equal((await client.get('dash')).schedule!.paused, true);
    await page.click(`${row} [data-testid="schedule-toggle"]`);
    await page.waitForSelector(`${row}[data-paused="false"]`, { timeout: 20000 });
  } finally {
    await browser?.close();
  }
});
