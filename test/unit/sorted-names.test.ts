// SortedNames: the order paged lists walk, kept by merging what changed
// instead of sorting everything again.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SortedNames } from '#actors/leader/core/sorted-names.js';

describe('SortedNames', () => {
  test('after any adds and removes, read at any points, it is the live names in order (fast-check)', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('add' as const), name: fc.stringMatching(/^[a-e]{1,3}$/) }),
      fc.record({ k: fc.constant('del' as const), name: fc.stringMatching(/^[a-e]{1,3}$/) }),
      fc.record({ k: fc.constant('read' as const) }),
      fc.record({ k: fc.constant('reset' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const live = new Map<string, true>();
        const order = new SortedNames();
        for (const o of ops) {
          if (o.k === 'add' && !live.has(o.name)) {
            live.set(o.name, true);
            order.changed(o.name, true);
          } else if (o.k === 'del' && live.delete(o.name)) order.changed(o.name, false);
          else if (o.k === 'reset') order.changed();
          else if (o.k === 'read') assert.deepEqual(order.of(live), [...live.keys()].sort());
        }
        assert.deepEqual(order.of(live), [...live.keys()].sort());
      }),
    );
  });
});
