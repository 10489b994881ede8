// The worker's assignment rules: snapshot then events, no gap, no duplicate,
// no going back, and only our incarnation's assignments run.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Assignments, type Action, type Known } from '#actors/worker/assignments.js';
import { decodeAssignEvent, decodeAssignments, isAssignEvent } from '#protocol/assigned.js';
import { json, packed } from '#protocol/codec.js';
import { keys } from '#protocol/keys.js';
import type { AssignedTask, AssignEvent } from '#protocol/messages.js';

const res = (name: string, id: string, revision: number, attempt = 1): AssignedTask => ({ name, id, worker: 'w1', spec: {}, createdAt: '', revision, attempt });
const put = (name: string, id: string, revision: number, epoch = 'E', attempt = 1): AssignEvent => ({ type: 'put', resource: res(name, id, revision, attempt), revision, epoch });
const del = (name: string, id: string, revision: number, epoch = 'E'): AssignEvent => ({ type: 'delete', resource: res(name, id, revision), revision, epoch });

/** known builds what a worker has: name -> attempt 1 of that id. */
const known = (entries: Array<[string, string]> = []) => new Map(entries.map(([n, id]) => [n, { id, attempt: 1 }]));

/** run applies actions to the known set, as the worker does. */
function run(running: Map<string, Known>, actions: Action[]): void {
  for (const a of actions) {
    if (a.kind === 'stop') running.delete(a.name);
    else running.set(a.task.name, { id: a.task.id, attempt: a.task.attempt });
  }
}
const ids = (m: Map<string, Known>) => [...m].map(([n, h]) => [n, h.id]).sort();

describe('Assignments', () => {
  test('unchanged: the keys at the revisions last applied give back the values held; anything else asks for a read', () => {
    const a = new Assignments();
    const running = known();
    run(running, a.snapshot([{ resource: res('x', 'x1', 5), epoch: 'E' }, { resource: res('y', 'y1', 6), epoch: 'E' }], 10, 'E', running, 'test'));
    run(running, a.apply(put('z', 'z1', 12), 'E', running));
    run(running, a.apply(del('y', 'y1', 13), 'E', running));
    const keys = [{ name: 'x', modRevision: 5 }, { name: 'z', modRevision: 12 }];
    assert.deepEqual(a.unchanged(keys)?.map((k) => [k.resource.name, k.resource.id, k.epoch]).sort(), [['x', 'x1', 'E'], ['z', 'z1', 'E']]);
    // A put we missed (newer revision), a key we do not know, a key gone: read the values.
    assert.equal(a.unchanged([{ name: 'x', modRevision: 5 }, { name: 'z', modRevision: 14 }]), undefined);
    assert.equal(a.unchanged([...keys, { name: 'w', modRevision: 15 }]), undefined);
    assert.equal(a.unchanged([{ name: 'x', modRevision: 5 }]), undefined);
    // A resync from what it gave back changes nothing that runs.
    assert.deepEqual(a.snapshot(a.unchanged(keys)!, 20, 'E', running, 'test'), []);
  });

  test('snapshot starts our incarnation\'s assignments and stops everything else', () => {
    const a = new Assignments();
    const running = known([['old', 'o1'], ['keep', 'k1']]);
    const actions = a.snapshot(
      [
        { resource: res('keep', 'k1', 5), epoch: 'E' },
        { resource: res('new', 'n1', 6), epoch: 'E' },
        { resource: res('stale', 's1', 7), epoch: 'OLD' },
      ],
      10, 'E', running, 'test',
    );
    run(running, actions);
    assert.deepEqual(ids(running), [['keep', 'k1'], ['new', 'n1']]);
  });

  test('events at or below the snapshot revision are already in it (no duplicate)', () => {
    const a = new Assignments();
    const running = known();
    run(running, a.snapshot([], 10, 'E', running, 'test'));
    assert.deepEqual(a.apply(put('x', 'x1', 9), 'E', running), []);
    assert.deepEqual(a.apply(put('x', 'x1', 10), 'E', running), []);
    assert.equal(a.apply(put('x', 'x1', 11), 'E', running).length, 1);
  });

  test('a repeated or older event for a name changes nothing (no going back)', () => {
    const a = new Assignments();
    const running = known();
    run(running, a.snapshot([], 1, 'E', running, 'test'));
    run(running, a.apply(put('x', 'x1', 5), 'E', running));
    run(running, a.apply(del('x', 'x1', 7), 'E', running));
    assert.deepEqual(a.apply(put('x', 'x1', 5), 'E', running), [], 'the late put is old news');
    assert.equal(running.size, 0);
  });

  test('an assignment for another incarnation is not ours: it stops what runs and starts nothing', () => {
    const a = new Assignments();
    const running = known([['x', 'x1']]);
    run(running, a.snapshot([{ resource: res('x', 'x1', 2), epoch: 'E' }], 2, 'E', running, 'test'));
    const actions = a.apply(put('x', 'x1', 3, 'OTHER'), 'E', running);
    assert.deepEqual(actions, [{ kind: 'stop', name: 'x', reason: 'not ours' }]);
  });

  test('a re-created name (new id) replaces the running task', () => {
    const a = new Assignments();
    const running = known([['x', 'x1']]);
    run(running, a.snapshot([{ resource: res('x', 'x1', 2), epoch: 'E' }], 2, 'E', running, 'test'));
    const actions = a.apply(put('x', 'x2', 4), 'E', running);
    assert.deepEqual(actions.map((x) => x.kind), ['stop', 'start']);
  });

  test('property: after any delivery order with duplicates, what runs is the newest state of each name', () => {
    // A history of puts and deletes per name, revisions increasing; delivered shuffled, with repeats.
    const history = fc.array(fc.record({ name: fc.constantFrom('a', 'b', 'c'), del: fc.boolean(), mine: fc.boolean() }), { maxLength: 30 });
    fc.assert(
      fc.property(history, fc.infiniteStream(fc.nat()), (steps, picks) => {
        const events = steps.map((s, i) => (s.del ? del(s.name, `${s.name}${i}`, i + 2) : put(s.name, `${s.name}${i}`, i + 2, s.mine ? 'E' : 'X')));
        const it = picks[Symbol.iterator]();
        const delivered = [...events, ...events.filter(() => (it.next().value as number) % 3 === 0)];
        // Shuffle deterministically from the stream.
        for (let i = delivered.length - 1; i > 0; i--) {
          const j = (it.next().value as number) % (i + 1);
          [delivered[i], delivered[j]] = [delivered[j]!, delivered[i]!];
        }
        const a = new Assignments();
        const running = known();
        run(running, a.snapshot([], 1, 'E', running, 'test'));
        for (const ev of delivered) run(running, a.apply(ev, 'E', running));
        // Expected: for each name, its newest event decides.
        const want = new Map<string, string>();
        for (const name of ['a', 'b', 'c']) {
          const last = [...events].reverse().find((e) => e.resource.name === name);
          if (last && last.type === 'put' && last.epoch === 'E') want.set(name, last.resource.id);
        }
        // Old news may arrive after newer events and must not resurrect or stop anything.
        // Because delivery is shuffled, the newest event might arrive before older ones;
        // what runs must still equal the newest state.
        assert.deepEqual(ids(running), [...want].sort());
      }),
      { numRuns: 300 },
    );
  });

  test('a newer attempt of the same resource replaces the one it knows; the same attempt again changes nothing', () => {
    const a = new Assignments();
    const running = known([['x', 'x1']]);
    run(running, a.snapshot([{ resource: res('x', 'x1', 2), epoch: 'E' }], 2, 'E', running, 'test'));
    assert.deepEqual(a.apply(put('x', 'x1', 3, 'E', 1), 'E', running), [], 'attempt 1 is already known');
    const actions = a.apply(put('x', 'x1', 4, 'E', 2), 'E', running);
    assert.deepEqual(actions.map((x) => x.kind), ['stop', 'start']);
    assert.equal(actions[1]?.kind === 'start' && actions[1].task.attempt, 2);
  });

  test('an attempt that ended on its own is still known: a resync never starts it again', () => {
    const a = new Assignments();
    const ended = known([['x', 'x1']]); // completed and reported, still assigned until the leader says otherwise
    assert.deepEqual(a.snapshot([{ resource: res('x', 'x1', 5), epoch: 'E' }], 5, 'E', ended, 'test'), []);
  });

  test('isAssignEvent refuses anything not shaped like an assign event', () => {
    assert.equal(isAssignEvent(put('x', 'x1', 1)), true);
    for (const bad of [null, 1, 'x', {}, { type: 'put', revision: 1, epoch: 'E' }, { type: 'nope', resource: res('x', 'y', 1), revision: 1, epoch: 'E' }]) {
      assert.equal(isAssignEvent(bad), false, JSON.stringify(bad));
    }
  });

  test('decodeAssignEvent reads an event off the wire; decodeAssignments skips foreign keys and names malformed values', () => {
    assert.deepEqual(decodeAssignEvent(json.encode(put('x', 'x1', 3))), put('x', 'x1', 3));
    assert.equal(decodeAssignEvent(new TextEncoder().encode('{not json')), undefined);
    assert.equal(decodeAssignEvent(json.encode({ type: 'put' })), undefined);
    const value = packed.encode({ name: 'x', id: 'x1', worker: 'w1', spec: {}, createdAt: '', attempt: 2, epoch: 'E', term: 1, hold: true });
    const { assigned, malformed } = decodeAssignments([
      { key: keys.assignment('w1', 'x'), value, modRevision: 7 },
      { key: keys.assignment('w1', 'bad'), value: packed.encode({ name: 'bad' }), modRevision: 8 },
      { key: keys.worker('w1'), value, modRevision: 9 },
    ]);
    assert.deepEqual(assigned, [{ resource: { name: 'x', id: 'x1', worker: 'w1', spec: {}, createdAt: '', revision: 7, attempt: 2, hold: true }, epoch: 'E' }]);
    assert.deepEqual(malformed.map((m) => m.key), [keys.assignment('w1', 'bad')]);
  });
});
