// What `gaffer apply -f` reads and how it cuts a file into requests.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UsageError } from '#platform/config.js';
import { chunks, parseApplyFile } from '#cli/apply-file.js';

describe('apply files', () => {
  test('JSON: a list, or { resources }', () => {
    assert.deepEqual(parseApplyFile('[{"name":"a"},{"name":"b","spec":{"v":1}}]', 'f.json'), [{ name: 'a' }, { name: 'b', spec: { v: 1 } }]);
    assert.deepEqual(parseApplyFile('{"resources":[{"name":"a"}]}', 'f.json'), [{ name: 'a' }]);
    assert.throws(() => parseApplyFile('{"name":', 'f.json'), UsageError);
    assert.throws(() => parseApplyFile('[1]', 'f.json'), UsageError);
  });

  test('YAML: documents of one resource or a list, empty documents skipped; JSON reads as YAML too', () => {
    const text = ['name: a', 'spec: { labels: { team: x } }', '---', '- name: b', '- name: c', '---', ''].join('\n');
    assert.deepEqual(parseApplyFile(text, 'f.yaml'), [{ name: 'a', spec: { labels: { team: 'x' } } }, { name: 'b' }, { name: 'c' }]);
    assert.deepEqual(parseApplyFile('[{"name":"a"}]', 'stdin'), [{ name: 'a' }]);
    assert.throws(() => parseApplyFile('a: [', 'f.yaml'), UsageError);
  });

  test('chunks keep the order, hold at most max items, and stay near the byte limit (fast-check)', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ name: fc.string({ minLength: 1, maxLength: 30 }) }), { maxLength: 60 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 400 }), (items, max, bytes) => {
        const parts = chunks(items, max, bytes);
        assert.deepEqual(parts.flat(), items);
        for (const p of parts) {
          assert.ok(p.length >= 1 && p.length <= max);
          // Over the limit only when one item alone is.
          const size = p.reduce((n, x) => n + Buffer.byteLength(JSON.stringify(x)) + 1, 0);
          assert.ok(size <= bytes || p.length === 1);
        }
      }),
    );
  });
});
