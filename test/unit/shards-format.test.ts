// How the CLI shows a sharded resource (src/cli/shards-format.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shardTable, workerCell } from '#cli/shards-format.js';
import { resources } from '#cli/format.js';
import type { Resource } from '#protocol/messages.js';

const base: Resource = { name: 'crawl', id: 'abcdef0123', worker: null, spec: { kind: 'relay', shards: 3 }, createdAt: new Date(0).toISOString(), revision: 9, state: 'running', attempt: 2, failures: 0 };
const sharded: Resource = {
  ...base,
  progress: { handled: 30 },
  shards: [
    { index: 0, worker: 'w2', state: 'running', attempt: 1, progress: { handled: 10 }, idle: true },
    { index: 1, worker: 'w1', state: 'running', attempt: 2, progress: { handled: 20 }, idle: false },
    { index: 2, worker: null, state: 'pending', attempt: 0 },
  ],
};

test('ls: a sharded resource shows its shard count and workers', () => {
  assert.equal(workerCell(sharded), '3 shards: w1,w2');
  assert.equal(workerCell({ ...base, worker: 'w3' }), 'w3');
  assert.equal(workerCell(base), '-');
  assert.match(resources([sharded], new Date(0)), /crawl\s+running\s+3 shards: w1,w2/);
});

test('get: one row per shard, with its state, worker, attempt, activity and progress', () => {
  const t = shardTable(sharded).trim().split('\n');
  assert.match(t[0]!, /^SHARD\s+STATE\s+WORKER\s+ATTEMPT\s+ACTIVITY\s+PROGRESS$/);
  assert.match(t[1]!, /^\s*0\s+running\s+w2\s+1\s+idle\s+\{"handled":10\}$/);
  assert.match(t[2]!, /^\s*1\s+running\s+w1\s+2\s+busy\s+\{"handled":20\}$/);
  assert.match(t[3]!, /^\s*2\s+pending\s+-\s+0\s*$/);
  assert.equal(shardTable(base), '');
});
