// Receipts (actors/worker/kinds/crawl/receipts.ts) on plain values and a fake
// clock: a sent URL keeps the shard busy until it shows up in its owner's
// seen log; one that does not, while the owner's log stands still, is sent
// again, each time after twice as long; a URL whose receipt was read within
// the queue's duplicate window needs none; a hole the bounded store left in
// a log is stepped over.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Json } from '#kinds/api.js';
import { Receipts, RESEND_MS } from '#actors/worker/kinds/crawl/receipts.js';
import { encodeDelta } from '#actors/worker/kinds/crawl/seen-log.js';
import { hash64 } from '#actors/worker/kinds/crawl/seen-set.js';
import { FakeClock } from '../fakes/clock.js';

const WINDOW_MS = 600_000;

/** A fleet of `count` seen logs (owner → delta n → value) and what a Receipts does to it. */
function harness(count = 2) {
  const clock = new FakeClock();
  const logs: Array<Map<number, Json>> = Array.from({ length: count }, () => new Map());
  const resent: Array<{ owner: number; url: string; tries: number; at: number }> = [];
  let marks = 0;
  const r = new Receipts({
    clock,
    count,
    windowMs: WINDOW_MS,
    read: async (owner, n) => logs[owner]!.get(n),
    resend: async (owner, url, _depth, tries) => void resent.push({ owner, url, tries, at: clock.now() }),
    busy: () => {
      marks++;
      let given = false;
      return () => {
        if (!given) marks--;
        given = true;
      };
    },
  });
  /** finish appends one delta with these URLs to `owner`'s log. */
  const finish = (owner: number, ...urls: string[]): void => {
    logs[owner]!.set(logs[owner]!.size, encodeDelta(urls.flatMap((u) => hash64(u))));
  };
  const send = (owner: number, url: string): void => r.expect(owner, url, 1, ...hash64(url));
  return { clock, logs, resent, r, finish, send, marks: () => marks };
}

test('a sent URL keeps the shard busy until its owner logs it finished', async () => {
  const h = harness();
  h.send(1, 'http://b.test/1');
  h.send(0, 'http://a.test/1');
  assert.equal(h.marks(), 1, 'one busy mark however many are pending');
  assert.equal(h.r.outstanding, 2);
  h.finish(1, 'http://b.test/1', 'http://b.test/other');
  await h.r.poll();
  assert.equal(h.r.outstanding, 1);
  assert.equal(h.marks(), 1);
  h.finish(0, 'http://a.test/1');
  await h.r.poll();
  assert.equal(h.r.outstanding, 0);
  assert.equal(h.marks(), 0, 'the mark is given back');
  assert.deepEqual(h.resent, []);
});

test('no receipt while the owner\'s log stands still: sent again after RESEND_MS, then after twice as long each time', async () => {
  const h = harness();
  const t0 = h.clock.now();
  h.send(1, 'http://b.test/lost');
  for (let t = 0; t < 8 * RESEND_MS; t += 1000) {
    await h.clock.advance(1000);
    await h.r.poll();
  }
  assert.deepEqual(h.resent.map((x) => [x.tries, x.at - t0]), [[1, RESEND_MS], [2, 3 * RESEND_MS], [3, 7 * RESEND_MS]]);
  assert.equal(h.r.resent, 3);
  // The copy sent again is handled: the receipt comes, and the busy mark goes.
  h.finish(1, 'http://b.test/lost');
  await h.r.poll();
  assert.equal(h.marks(), 0);
});

test('an owner whose log keeps growing is not sent anything again (it is busy with a backlog)', async () => {
  const h = harness();
  h.send(1, 'http://b.test/deep-in-the-queue');
  for (let i = 0; i < 3 * RESEND_MS / 1000; i++) {
    h.finish(1, `http://b.test/p/${i}`);
    await h.clock.advance(1000);
    await h.r.poll();
  }
  assert.deepEqual(h.resent, []);
  assert.equal(h.marks(), 1, 'still waiting');
});

test('an owner that only logs again URLs already read from it is not working through a backlog: what waits on it is sent again', async () => {
  const h = harness();
  h.send(1, 'http://b.test/first');
  h.finish(1, 'http://b.test/old', 'http://b.test/first');
  await h.r.poll();
  h.send(1, 'http://b.test/lost');
  for (let i = 0; i < RESEND_MS / 1000; i++) {
    h.finish(1, 'http://b.test/old'); // a duplicate of a finished URL, logged again as its receipt
    await h.clock.advance(1000);
    await h.r.poll();
  }
  assert.deepEqual(h.resent.map((x) => x.url), ['http://b.test/lost']);
});

test('a URL whose receipt was read within the duplicate window needs none (its send was a duplicate the queue dropped)', async () => {
  const h = harness();
  h.send(1, 'http://b.test/waited');
  h.finish(1, 'http://b.test/waited', 'http://b.test/popular');
  await h.r.poll();
  h.send(1, 'http://b.test/popular');
  assert.equal(h.r.outstanding, 0, 'read a moment ago: no wait');
  await h.clock.advance(WINDOW_MS + 120_000);
  h.send(1, 'http://b.test/popular');
  assert.equal(h.r.outstanding, 1, 'past the window the queue stores a send again, so its receipt is awaited');
});

test('a hole the bounded store left in an owner\'s log is stepped over once the log seems stuck', async () => {
  const h = harness();
  h.send(1, 'http://b.test/after-the-hole');
  h.finish(1, 'http://b.test/x');
  h.finish(1, 'http://b.test/after-the-hole');
  h.logs[1]!.delete(0);
  await h.r.poll();
  assert.equal(h.r.outstanding, 1, 'not past the hole at once');
  await h.clock.advance(RESEND_MS);
  await h.r.poll();
  assert.equal(h.r.outstanding, 0);
});

test('property: whatever is sent and whichever way the receipts come, the shard is busy exactly while some sent URL has no receipt', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 20 }), fc.boolean()), { maxLength: 40 }), async (steps) => {
      const h = harness(3);
      const waiting = new Set<string>();
      // Within the window, a URL finished once needs no receipt again.
      const finished = new Set<string>();
      for (const [owner, n, finishNow] of steps) {
        const url = `http://h${owner}.test/p/${n}`;
        h.send(owner, url);
        if (!finished.has(url)) waiting.add(url);
        if (finishNow) {
          h.finish(owner, url);
          await h.r.poll();
          waiting.delete(url);
          finished.add(url);
        }
        assert.equal(h.marks(), waiting.size > 0 ? 1 : 0);
        assert.equal(h.r.outstanding, waiting.size);
      }
    }),
    { numRuns: 100 },
  );
});
