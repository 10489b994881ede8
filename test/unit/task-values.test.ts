// toJson: what a task hands gaffer (checkpoints, items, results, progress) is
// copied as plain JSON, or refused with a message that says where it went wrong.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_DEPTH, toJson } from '#actors/worker/runtime/context.js';

test('a "__proto__" key is refused where the task can be told, not later by the leader', () => {
  const v = JSON.parse('{"a":{"__proto__":{"x":1}}}') as unknown;
  assert.throws(() => toJson(v, 'checkpoint'), /^Error: checkpoint is not JSON: a "__proto__" key at \$\.a\.__proto__/);
});

test('deeper than the leader accepts is refused; at the limit it is copied', () => {
  const nest = (n: number): unknown => {
    let v: unknown = 1;
    for (let i = 0; i < n; i++) v = { d: v };
    return v;
  };
  assert.deepEqual(toJson(nest(MAX_DEPTH), 'state'), nest(MAX_DEPTH));
  assert.throws(() => toJson(nest(MAX_DEPTH + 1), 'state'), /nested deeper than 64/);
});
