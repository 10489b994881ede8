import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { choose, compareLoad, type Slot } from '#actors/leader/core/placement.js';

/** pick is choose for a plain kind: the best slot with room, or undefined. */
function pick<S extends Slot>(slots: Iterable<S>, kind: string): S | undefined {
  const c = choose(slots, { kind });
  return 'slot' in c ? c.slot : undefined;
}

const slot = (id: string, assigned: number, capacity: number, kinds = ['noop'], labels: Record<string, string> = {}): Slot => ({
  id, assigned, capacity, kinds: new Set(kinds), labels, cordoned: false,
});

/** placeMany places `count` noop resources one by one, each on the least-loaded slot at that moment. */
function placeMany(slots: Slot[], count: number): Array<string | undefined> {
  const out: Array<string | undefined> = [];
  for (let i = 0; i < count; i++) {
    const s = pick(slots, 'noop');
    if (s) s.assigned++;
    out.push(s?.id);
  }
  return out;
}

describe('compareLoad', () => {
  test('orders by assigned/capacity, not by raw assigned count', () => {
    // 3/10 is less loaded than 1/2 even though it holds more resources.
    assert.ok(compareLoad(slot('a', 3, 10), slot('b', 1, 2)) < 0);
    assert.ok(compareLoad(slot('b', 1, 2), slot('a', 3, 10)) > 0);
  });

  test('equal ratios tie-break on fewer assigned, then on the smaller id', () => {
    // 1/3 and 2/6 are the same load; the emptier worker wins.
    assert.ok(compareLoad(slot('z', 1, 3), slot('a', 2, 6)) < 0);
    assert.ok(compareLoad(slot('a', 2, 6), slot('z', 1, 3)) > 0);
    assert.ok(compareLoad(slot('a', 1, 3), slot('b', 1, 3)) < 0);
    assert.ok(compareLoad(slot('b', 1, 3), slot('a', 1, 3)) > 0);
    assert.equal(compareLoad(slot('a', 1, 3), slot('a', 1, 3)), 0);
  });

  test('separates loads that differ by less than one part in a trillion', () => {
    // 1000001/1000002 > 1000000/1000001 by about 1e-12: near the largest capacities we accept.
    const big = slot('a', 1_000_001, 1_000_002);
    const small = slot('b', 1_000_000, 1_000_001);
    assert.ok(compareLoad(big, small) > 0);
    assert.ok(compareLoad(small, big) < 0);
  });
});

describe('choose, for a plain kind', () => {
  test('returns the least-loaded slot', () => {
    const got = pick([slot('a', 5, 10), slot('b', 2, 10), slot('c', 4, 10)], 'noop');
    assert.equal(got?.id, 'b');
  });

  test('skips full and over-full workers even when they would sort first', () => {
    // A capacity-0 worker has "load" 0 by cross-multiplication; it must still be skipped.
    const got = pick([slot('a', 0, 0), slot('b', 3, 3), slot('c', 5, 4), slot('d', 9, 10)], 'noop');
    assert.equal(got?.id, 'd');
  });

  test('returns undefined when every worker is full or none is live', () => {
    assert.equal(pick([], 'noop'), undefined);
    assert.equal(pick([slot('a', 2, 2), slot('b', 1, 1)], 'noop'), undefined);
  });

  test('is deterministic regardless of input order', () => {
    const slots = [slot('m', 1, 4), slot('c', 1, 4), slot('x', 1, 4), slot('c2', 2, 8)];
    const orders = [slots, [...slots].reverse(), [slots[2]!, slots[0]!, slots[3]!, slots[1]!]];
    for (const o of orders) assert.equal(pick(o, 'noop')?.id, 'c');
  });

  test('accepts any iterable and returns the same object, not a copy', () => {
    const b = slot('b', 0, 1);
    const m = new Map([
      ['a', slot('a', 1, 1)],
      ['b', b],
    ]);
    assert.equal(pick(m.values(), 'noop'), b);
  });
});

describe('placeMany', () => {
  test('spreads evenly across equal workers in a fixed round-robin order', () => {
    const slots = [slot('c', 0, 10), slot('a', 0, 10), slot('b', 0, 10)];
    const got = placeMany(slots, 7);
    assert.deepEqual(got, ['a', 'b', 'c', 'a', 'b', 'c', 'a']);
    assert.deepEqual(
      slots.map((s) => [s.id, s.assigned]),
      [
        ['c', 2],
        ['a', 3],
        ['b', 2],
      ],
    );
  });

  test('fills in proportion to capacity', () => {
    const slots = [slot('a', 0, 2), slot('b', 0, 4)];
    assert.deepEqual(placeMany(slots, 6), ['a', 'b', 'b', 'a', 'b', 'b']);
    assert.equal(slots[0]!.assigned, 2);
    assert.equal(slots[1]!.assigned, 4);
  });

  test('levels existing load before spreading', () => {
    const slots = [slot('a', 4, 10), slot('b', 0, 10)];
    assert.deepEqual(placeMany(slots, 5), ['b', 'b', 'b', 'b', 'a']);
  });

  test('leaves the overflow pending as undefined once everyone is full', () => {
    const slots = [slot('a', 0, 1), slot('b', 1, 2)];
    assert.deepEqual(placeMany(slots, 4), ['a', 'b', undefined, undefined]);
    assert.equal(slots[0]!.assigned, 1);
    assert.equal(slots[1]!.assigned, 2);
  });

  test('with no workers everything stays pending, and count 0 places nothing', () => {
    assert.deepEqual(placeMany([], 3), [undefined, undefined, undefined]);
    const slots = [slot('a', 0, 5)];
    assert.deepEqual(placeMany(slots, 0), []);
    assert.equal(slots[0]!.assigned, 0);
  });

  test('never leaves two workers more than one apart when capacities are equal', () => {
    const slots = Array.from({ length: 7 }, (_, i) => slot(`w${i}`, 0, 1000));
    placeMany(slots, 1000);
    const counts = slots.map((s) => s.assigned);
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      1000,
    );
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `uneven: ${counts.join(',')}`);
  });
});

describe('choose', () => {
  test('only workers that run the kind qualify', () => {
    const c = choose([slot('a', 0, 10, ['noop']), slot('b', 5, 10, ['crawl', 'noop'])], { kind: 'crawl' });
    assert.equal('slot' in c && c.slot.id, 'b');
  });

  test('says why nothing qualifies: no worker, no worker of the kind, no room', () => {
    assert.deepEqual(choose([], { kind: 'noop' }), { reason: 'no live worker' });
    assert.deepEqual(choose([slot('a', 0, 1)], { kind: 'crawl2' }), { reason: 'no live worker runs kind crawl2' });
    assert.deepEqual(choose([slot('a', 1, 1)], { kind: 'noop' }), { reason: 'no worker fits (a: full (1/1))' });
  });

  test('avoided workers are taken only when nothing else qualifies', () => {
    const avoid = new Set(['a']);
    const c1 = choose([slot('a', 0, 10), slot('b', 9, 10)], { kind: 'noop', avoid });
    assert.equal('slot' in c1 && c1.slot.id, 'b', 'the fuller b beats the avoided a');
    const c2 = choose([slot('a', 0, 10), slot('b', 10, 10)], { kind: 'noop', avoid });
    assert.equal('slot' in c2 && c2.slot.id, 'a', 'a when b is full');
  });
});
