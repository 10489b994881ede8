// The dedupe record format (src/protocol/outcomes.ts) and the worker status
// answer a new leader reads (src/protocol/worker-status.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeOutcomes, encodeOutcomes, type Outcome } from '#protocol/outcomes.js';
import { decodeRunning } from '#protocol/worker-status.js';
import { json, packed } from '#protocol/codec.js';
import type { StoredResource } from '#protocol/stored.js';

const rec = fc.record({ name: fc.string({ minLength: 1, maxLength: 8 }), id: fc.uuid() }).map(
  ({ name, id }): StoredResource => ({ name, id, worker: null, spec: {}, createdAt: '', state: 'completed', attempt: 1, failures: 0 }),
);
const outcome: fc.Arbitrary<Outcome> = fc.oneof(
  fc.tuple(rec, fc.boolean()).map(([r, created]): Outcome => ({ op: 'add', created, rec: r })),
  rec.map((r): Outcome => ({ op: 'delete', rec: r })),
  rec.map((r): Outcome => ({ op: 'restart', rec: r })),
  fc.string({ minLength: 1, maxLength: 8 }).map((name): Outcome => ({ op: 'absent', name })),
);

test('an outcome read back is what a later leader needs of it: adds and restarts by name and id, a delete whole', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.string({ minLength: 1, maxLength: 6 }), outcome), { maxLength: 8 }), (entries) => {
      const back = decodeOutcomes(encodeOutcomes(entries));
      assert.equal(back.length, entries.length);
      back.forEach(([id, known], i) => {
        const [wantId, o] = entries[i]!;
        assert.equal(id, wantId);
        if (o.op === 'add') assert.deepEqual(known, { op: o.created ? 'added' : 'existed', name: o.rec.name, id: o.rec.id });
        else if (o.op === 'restart') assert.deepEqual(known, { op: 'restarted', name: o.rec.name, id: o.rec.id });
        else assert.deepEqual(known, o);
      });
    }),
  );
});

test('entries not shaped like a record are skipped, not guessed at', () => {
  const value = packed.encode([['r1', ['n', 'a']], 'junk', ['r2', ['a', 'b']], ['r3', ['z', 'x', 'y']], [7, ['n', 'a']], ['r4', ['d', null]]]);
  assert.deepEqual(decodeOutcomes(value), [['r1', { op: 'absent', name: 'a' }]]);
  assert.deepEqual(decodeOutcomes(packed.encode({ not: 'a list' })), []);
});

test('a status answer gives the tasks that are shaped like tasks, and nothing for anything else', () => {
  const answer = { id: 'w1', running: ['a'], tasks: [{ name: 'a', id: 'i', attempt: 2, since: 'x' }, { name: 'b', id: 3, attempt: 1 }, null] };
  assert.deepEqual(decodeRunning(json.encode(answer)), [{ name: 'a', id: 'i', attempt: 2 }]);
  assert.deepEqual(decodeRunning(json.encode({ id: 'w1' })), []);
  assert.deepEqual(decodeRunning(json.encode(null)), []);
});
