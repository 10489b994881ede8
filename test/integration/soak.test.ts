// The soak run, short: 20 s of mixed load on a 3-master, 3-worker cluster
// (3-member etcd, one nats-server), sampled every 2 s (about 11 samples a
// process, as many as 30 s every 3 s gave), with one fault (a worker
// SIGKILLed and restarted at 10 s, its samples 3 s after not fitted). It must stop by itself, exit 0 and
// write soak.json and soak.svg, with samples of every process, heap and
// subscription readings for every gaffer process, and the killed worker as
// two incarnations. Thresholds are set out of reach and every window is
// judged (no minimum length, every sample fitted, no major-GC rule): 20 s says
// nothing about leaks (test/unit/soak-fit.test.ts tests the verdict); this
// tests the harness.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runScript } from '../harness.js';
import type { SoakResults } from '#soak/run.js';

const RUN = fileURLToPath(new URL('../../soak/run.js', import.meta.url));
const DEADLINE_MS = 150_000;
const GAFFER = ['m1', 'm2', 'm3', 'w1', 'w2', 'w3'];
const SERVERS = ['nats-server', 'etcd1', 'etcd2', 'etcd3'];

test('soak: a 20 s run with one fault samples every process and writes its JSON and plot', { timeout: DEADLINE_MS + 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gaffer-soak-test-'));
  try {
    const env = {
      SOAK_SECONDS: '20',
      SOAK_SAMPLE_SECONDS: '2',
      SOAK_FAULT_SECONDS: '10',
      SOAK_KINDS: 'kill-worker',
      SOAK_QUIET_SECONDS: '3',
      SOAK_CRAWLS: '1',
      SOAK_CRAWL_PAGES: '40',
      SOAK_MIN_FIT_MINUTES: '0',
      SOAK_FLOOR_SECONDS: '0',
      SOAK_MIN_MAJOR_GCS: '0',
      SOAK_MAX_RSS_MIB_PER_MIN: '1000000',
      SOAK_MAX_HEAP_MIB_PER_MIN: '1000000',
      SOAK_MAX_FDS_PER_MIN: '1000000',
      SOAK_MAX_SUBS_PER_MIN: '1000000',
      SOAK_OUT: dir,
    };
    const { code, signal, output } = await runScript(RUN, env, DEADLINE_MS);
    const seed = output.split('\n').find((l) => l.includes('replay with SOAK_SEED')) ?? '(no seed line)';
    const tail = `${seed}\n...\n${output.slice(-5000)}`;
    assert.equal(signal, null, `soak was killed by ${signal}:\n${tail}`);
    assert.equal(code, 0, `soak exited ${code}:\n${tail}`);
    const svgPath = join(dir, 'soak.svg');
    assert.ok(existsSync(svgPath), 'soak.svg written');
    const svg = readFileSync(svgPath, 'utf8');
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    for (const title of ['RSS', 'V8 heap used', 'open file descriptors', 'NATS subscriptions']) assert.ok(svg.includes(title), `a chart for ${title}`);
    const r = JSON.parse(readFileSync(join(dir, 'soak.json'), 'utf8')) as SoakResults;

    assert.equal(r.summary.pass, true);
    assert.equal(r.summary.failing, 0);
    assert.ok(r.meta.durationMs >= 20_000, `ran ${r.meta.durationMs} ms`);
    assert.equal(r.faults.length, 1, 'one fault');
    const fault = r.faults[0]!;
    assert.equal(fault.kind, 'kill-worker');
    assert.ok(!fault.error, `injector error: ${fault.error}`);
    for (const id of [...GAFFER, ...SERVERS]) {
      const mine = r.samples.filter((s) => s.id === id);
      assert.ok(mine.length >= 5, `${id}: ${mine.length} samples`);
      assert.ok(mine.every((s) => typeof s.rssMiB === 'number' && s.rssMiB > 0), `${id}: RSS in every sample`);
      assert.ok(mine.some((s) => typeof s.fds === 'number' && s.fds > 0), `${id}: open fds`);
      if (GAFFER.includes(id)) {
        assert.ok(mine.some((s) => typeof s.heapMiB === 'number' && s.heapMiB > 0), `${id}: heap from /metrics`);
        assert.ok(mine.some((s) => typeof s.subs === 'number' && s.subs > 0), `${id}: subscriptions from /connz`);
      }
    }
    // The killed worker: two incarnations, two series, never one line across the restart.
    const incarnations = r.processes.filter((p) => p.id === fault.target);
    assert.equal(incarnations.length, 2, `${fault.target} has two incarnations: ${JSON.stringify(incarnations)}`);
    assert.notEqual(incarnations[0]!.pid, incarnations[1]!.pid);
    assert.equal(r.fits.filter((f) => f.id === fault.target && f.metric === 'rss').length, 2);
    assert.ok(r.samples.some((s) => s.id === fault.target && s.excluded), 'samples after the fault are marked excluded');
    for (const m of ['rss', 'heap', 'fds', 'subs'] as const) {
      assert.ok(r.worst[m] && typeof r.worst[m]!.slope === 'number', `${m}: a worst slope`);
      assert.ok(r.fits.some((f) => f.metric === m && f.status === 'ok'), `${m}: judged series`);
    }
    assert.ok(Object.keys(r.finalSubscriptions).some((n) => n === 'gaffer-master-m1'), 'final subscriptions by connection');
    const counts = r.load as { requests: Record<string, number>; events: Record<string, number> };
    assert.ok((counts.requests['add ok'] ?? 0) > 0 && (counts.requests['list ok'] ?? 0) > 0, `requests answered: ${JSON.stringify(counts.requests)}`);
    assert.ok(Object.keys(counts.events).length > 0, 'the events.> watcher saw events');
    t.diagnostic(output.split('\n').filter((l) => l.startsWith('PASS') || l.startsWith('FAIL'))[0] ?? '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
