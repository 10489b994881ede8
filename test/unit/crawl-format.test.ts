// `gaffer crawl NAME`: a crawl's progress per shard and combined (src/cli/crawl-format.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crawlTable, crawlView } from '#cli/crawl-format.js';
import type { Resource } from '#protocol/messages.js';

const base: Resource = { name: 'site', id: 'abcdef0123', worker: null, spec: { kind: 'crawl', shards: 2 }, createdAt: new Date(0).toISOString(), revision: 9, state: 'running', attempt: 1, failures: 0 };

test('a running sharded crawl: a row per shard from its progress, and the combined row (sums, parked hosts merged)', () => {
  const r: Resource = {
    ...base,
    shards: [
      { index: 0, worker: 'w1', state: 'running', attempt: 1, progress: { fetched: 100, pages: 100, queued: 5, held: 9, errors: 1, duplicates: 3, pagesPerSec: 20.5, parked: ['a:1'] } },
      { index: 1, worker: 'w2', state: 'running', attempt: 2, progress: { fetched: 50, queued: 1, held: 2, errors: 0, duplicates: 0, pagesPerSec: 9.6, parked: [] } },
    ],
  };
  const v = crawlView(r, [40, 7]);
  assert.deepEqual(v.combined, { shard: 'all', state: 'running', worker: null, fetched: 150, queued: 6, held: 11, errors: 1, duplicates: 3, pagesPerSec: 30.1, parked: ['a:1'], backlog: 47 });
  const lines = crawlTable(v).split('\n');
  assert.equal(lines[0], 'site: running');
  assert.match(lines[2]!, /^SHARD\s+STATE\s+WORKER\s+FETCHED\s+QUEUED\s+HELD\s+BACKLOG\s+ERRORS\s+DUPLICATES\s+PAGES\/S\s+PARKED$/);
  assert.match(lines[3]!, /^\s*0\s+running\s+w1\s+100\s+5\s+9\s+40\s+1\s+3\s+20\.5\s+a:1$/);
  assert.match(lines[5]!, /^\s*all\s+running\s+-\s+150\s+6\s+11\s+47\s+1\s+3\s+30\.1\s+a:1$/);
  // Without the counts (no permission to read stream info), the column says '-'.
  assert.equal(crawlView(r).combined.backlog, null);
  assert.match(crawlTable(crawlView(r)).split('\n')[3]!, /^\s*0\s+running\s+w1\s+100\s+5\s+9\s+-\s+1/);
});

test('a completed sharded crawl reads each shard\'s result; an unsharded one its progress or result', () => {
  const done: Resource = {
    ...base,
    state: 'completed',
    result: { shards: [{ pages: 7, errors: 0, duplicates: 1, parked: [] }, { pages: 3, errors: 2, duplicates: 0, parked: ['b:2'] }] },
    shards: [
      { index: 0, worker: null, state: 'completed', attempt: 1 },
      { index: 1, worker: null, state: 'completed', attempt: 1 },
    ],
  };
  const v = crawlView(done);
  assert.equal(v.combined.fetched, 10);
  assert.equal(v.combined.errors, 2);
  assert.deepEqual(v.combined.parked, ['b:2']);
  const single: Resource = { ...base, spec: { kind: 'crawl' }, worker: 'w1', progress: { fetched: 4, queued: 2, errors: 0, parked: [] } };
  assert.equal(crawlView(single).shards.length, 1);
  assert.equal(crawlView(single).combined.fetched, 4);
  assert.doesNotMatch(crawlTable(crawlView(single)), /all/);
  assert.equal(crawlView({ ...single, state: 'completed', result: { pages: 9, errors: 1, skipped: 0, parked: [] } }).combined.fetched, 9);
});
