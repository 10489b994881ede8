// orAborted (src/platform/abortable.ts): it settles as its promise does or
// on the abort, and leaves nothing behind on the signal once the promise
// settles (Promise.race against a long-lived promise keeps every result).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { orAborted } from '#platform/abortable.js';
import { alive } from '../fakes/gc.js';

test('orAborted: the promise\'s value or rejection, or the abort value on abort (at once if aborted already)', async () => {
  const ac = new AbortController();
  assert.equal(await orAborted(Promise.resolve(1), ac.signal, 'stop'), 1);
  await assert.rejects(orAborted(Promise.reject(new Error('x')), ac.signal, 'stop'), /x/);
  const never = new Promise<number>(() => {});
  const p = orAborted(never, ac.signal, 'stop');
  ac.abort();
  assert.equal(await p, 'stop');
  assert.equal(await orAborted(never, ac.signal, 'stop'), 'stop');
});

test('orAborted: results are not kept by a signal that never aborts', async () => {
  const ac = new AbortController();
  const refs: Array<WeakRef<object>> = [];
  for (let i = 0; i < 200; i++) {
    const v = { i };
    refs.push(new WeakRef(v));
    await orAborted(Promise.resolve(v), ac.signal, undefined);
  }
  assert.ok((await alive(refs)) <= 1, 'results retained');
});
