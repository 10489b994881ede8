// The sharded-crawl checker (chaos/sharded-crawls.ts) and the snapshot's view
// of shards (harness/snapshot.ts) on plain values: lost and duplicated
// results, two owners of one shard, a host over its limit in some 1 s window
// (and the same while a worker resumed past its lease, a note), and a
// sharded resource converged when each shard runs on its own worker.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeCrawl, maxInWindow, type CrawlEvidence } from '#chaos/sharded-crawls.js';
import type { Run } from '#chaos/runs.js';
import { mismatches, type Snapshot } from '#harness/snapshot.js';
import type { Request } from '#test/fixtures/multisite.js';

const HOSTS = ['127.0.0.2:1000', '127.0.0.3:1000'];
const req = (host: number, path: string, at: number, status = 200): Request => ({ host, path, status, at });
const run = (worker: string, name: string, from: number, to: number, end: Run['end'] = 'stopped'): Run => ({ worker, name, id: `r1_s${name.split('/')[1]}`, from, to, end, startLine: '' });

function evidence(over: Partial<CrawlEvidence> = {}): CrawlEvidence {
  return {
    name: 'scrawl-01', hosts: HOSTS, wallOffset: 1_000_000, perHostRps: 2,
    // Each host at exactly its limit: two requests 500 ms apart, then a pause.
    log: [req(0, '/p/0.html', 0), req(0, '/p/2.html', 500), req(1, '/p/1.html', 0), req(1, '/p/3.html', 500), req(0, '/p/4.html', 1000)],
    runs: [run('w1', 'scrawl-01/0', 0, 2000), run('w2', 'scrawl-01/1', 0, 2000)],
    want: new Set(['127.0.0.2:1000 /p/0.html', '127.0.0.3:1000 /p/1.html', '127.0.0.2:1000 /p/2.html', '127.0.0.3:1000 /p/3.html', '127.0.0.2:1000 /p/4.html']),
    results: new Map([['127.0.0.2:1000 /p/0.html', 1], ['127.0.0.3:1000 /p/1.html', 1], ['127.0.0.2:1000 /p/2.html', 1], ['127.0.0.3:1000 /p/3.html', 1], ['127.0.0.2:1000 /p/4.html', 1]]),
    ...over,
  };
}

test('maxInWindow counts the half-open window [t, t + ms) from each request', () => {
  assert.equal(maxInWindow([0, 500, 1000], 1000).count, 2, 'a request exactly 1 s later opens a new window');
  assert.equal(maxInWindow([0, 500, 999], 1000).count, 3);
  assert.deepEqual(maxInWindow([], 1000), { count: 0, at: 0, to: 0 });
});

test('a clean crawl has no finding, and its counts are read from the evidence', () => {
  const j = judgeCrawl(evidence());
  assert.deepEqual(j.findings, []);
  assert.deepEqual(j.notes, []);
  assert.equal(j.busiestWindow, 2);
  assert.equal(j.shardRuns, 2);
  assert.equal(j.moves, 0);
});

test('a page without a result is lost, and the detail says whether the site served it', () => {
  const results = new Map(evidence().results);
  results.delete('127.0.0.2:1000 /p/4.html');
  const want = new Set([...evidence().want!, '127.0.0.3:1000 /p/5.html']);
  const j = judgeCrawl(evidence({ results, want }));
  assert.deepEqual(j.findings.map((f) => [f.kind, f.detail]), [
    ['sharded-result-lost', 'no result for 127.0.0.2:1000 /p/4.html (the site served it 1×)'],
    ['sharded-result-lost', 'no result for 127.0.0.3:1000 /p/5.html (never fetched)'],
  ]);
});

test('a page with two results is duplicated', () => {
  const results = new Map(evidence().results).set('127.0.0.3:1000 /p/3.html', 2);
  assert.deepEqual(judgeCrawl(evidence({ results })).findings.map((f) => f.kind), ['sharded-result-duplicated']);
});

test('a crawl that did not complete is judged on politeness and owners only', () => {
  const { want: _w, results: _r, ...rest } = evidence();
  assert.deepEqual(judgeCrawl(rest).findings, []);
});

test('a host over its limit in some 1 s window is a finding; the same while a worker resumed past its lease is a note', () => {
  const log = [...evidence().log, req(1, '/p/5.html', 900)];
  const j = judgeCrawl(evidence({ log }));
  assert.equal(j.findings.length, 1);
  assert.equal(j.findings[0]!.kind, 'host-over-limit');
  assert.match(j.findings[0]!.detail, /^127\.0\.0\.3:1000: 3 requests within 1 s/);
  // The resumed run's times are on the workers' clock: log time + wallOffset.
  const runs = [...evidence().runs, run('w3', 'scrawl-01/1', 1_000_400, 1_000_600, 'resumed-past-lease')];
  const k = judgeCrawl(evidence({ log, runs }));
  assert.deepEqual(k.findings, []);
  assert.equal(k.notes.length, 1);
  assert.match(k.notes[0]!, /while a worker resumed past its lease ran/);
});

test('two workers running one shard at once is an owner overlap; one after the other is a move', () => {
  const overlapping = [run('w1', 'scrawl-01/0', 0, 1500), run('w2', 'scrawl-01/0', 1000, 3000)];
  const j = judgeCrawl(evidence({ runs: overlapping }));
  assert.deepEqual(j.findings.map((f) => f.kind), ['shard-owner-overlap']);
  assert.equal(j.moves, 1);
  const moved = [run('w1', 'scrawl-01/0', 0, 1000), run('w2', 'scrawl-01/0', 1000, 3000)];
  assert.deepEqual(judgeCrawl(evidence({ runs: moved })).findings, []);
});

test('snapshot: a sharded resource is converged when each shard runs on its own worker, and its record runs nowhere', () => {
  const s: Snapshot = {
    at: 0,
    list: [
      { name: 'scrawl-01', id: 'r1', worker: null, state: 'running', sharded: true },
      { name: 'scrawl-01/0', id: 'r1_s0', worker: 'w1', state: 'running' },
      { name: 'scrawl-01/1', id: 'r1_s1', worker: 'w2', state: 'running' },
    ],
    running: { w1: [{ name: 'scrawl-01/0', id: 'r1_s0' }], w2: [{ name: 'scrawl-01/1', id: 'r1_s1' }] },
  };
  assert.deepEqual(mismatches(s), []);
  const wrong: Snapshot = { ...s, running: { w1: [{ name: 'scrawl-01/0', id: 'r1_s0' }, { name: 'scrawl-01/1', id: 'r1_s1' }], w2: [] } };
  assert.deepEqual(mismatches(wrong).map((f) => f.name), ['scrawl-01/1', 'scrawl-01/1'], 'a shard off its assignment, and not where it is assigned');
  assert.deepEqual(mismatches(wrong, new Set(['scrawl-01'])), [], 'skipping a resource skips its shards');
});
