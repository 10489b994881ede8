// Politeness measured where it matters, at the server: its own request log
// must never show more than perHostRps requests in any one-second window.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Json, TaskContext } from '#kinds/api.js';
import { crawl } from '#actors/worker/kinds/crawl/index.js';
import { startSite } from '../fixtures/site.js';
import { maxInWindow } from '../fixtures/windows.js';


test('maxInWindow counts every window that starts at a request', () => {
  assert.equal(maxInWindow([], 1000), 0);
  assert.equal(maxInWindow([0, 999, 1000, 1001, 2000], 1000), 3);
  assert.equal(maxInWindow([0, 999, 1000, 1001, 1998], 1000), 4);
  assert.equal(maxInWindow([0, 1000, 2000], 1000), 1);
});

test('never more than perHostRps requests to a host in any second, robots.txt included', async () => {
  const site = await startSite({ pages: 40, bad: false, padBytes: 200 });
  try {
    const emitted: string[] = [];
    const ctx: TaskContext = {
      resource: { name: 'crawl-rate', id: 'r1' },
      spec: { seeds: [site.seed], maxDepth: 100, perHostRps: 5, concurrency: 8 } as { [k: string]: Json },
      signal: new AbortController().signal,
      log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
      attempt: 1,
      checkpointed: undefined,
      checkpoint: async () => {},
      progress: () => {},
      emit: async (_item, o) => void emitted.push(o!.id!),
      shard: { index: 0, count: 1 }, send: async () => {}, inbox: { async *[Symbol.asyncIterator]() {} }, busy: () => () => {},
    };
    const result = await crawl.run(ctx);
    assert.deepEqual(result, { pages: 40, errors: 0, skipped: 3, parked: [] });
    assert.equal(site.log.length, 41);
    assert.equal(site.log[0]!.path, '/robots.txt');
    const worst = maxInWindow(site.log.map((r) => r.at), 1000);
    assert.ok(worst <= 5, `${worst} requests within one second`);
    // The limit was actually reached, so the check above had teeth.
    assert.equal(worst, 5);
  } finally {
    await site.close();
  }
});
