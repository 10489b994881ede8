import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  age,
  clean,
  clock,
  errorLine,
  EventAligner,
  eventCells,
  pairs,
  percent,
  resources,
  resourceSummary,
  shortId,
  status,
  table,
} from '#cli/format.js';
import { decodeEvent, eventSubjects, EventFilterError } from '#cli/watch.js';
import { json } from '#protocol/codec.js';
import type { Resource } from '#protocol/messages.js';

const NOW = new Date('2026-01-02T03:04:05.000Z');

function res(name: string, worker: string | null, extra: Partial<Resource> = {}): Resource {
  return {
    name,
    id: `${name}-0000-1111-2222-333333333333`,
    worker,
    spec: {},
    createdAt: '2026-01-02T03:04:00.000Z',
    revision: 7,
    state: worker ? 'running' : 'pending',
    attempt: worker ? 1 : 0,
    failures: 0,
    ...extra,
  };
}

/** columnStarts finds where each header begins, to check that cells line up under it. */
function columnStarts(header: string, names: string[]): number[] {
  return names.map((n) => header.indexOf(n));
}

describe('table', () => {
  test('aligns columns two spaces apart with no trailing spaces', () => {
    const out = table(['A', 'LONGER'], [['xxx', 'y'], ['z', '']]);
    assert.equal(out, ['A    LONGER', 'xxx  y', 'z'].join('\n'));
  });

  test('right-aligns where asked', () => {
    const out = table(['N', 'COUNT'], [['a', '5'], ['b', '1000']], { align: ['left', 'right'] });
    assert.equal(out, ['N  COUNT', 'a      5', 'b   1000'].join('\n'));
  });

  test('missing cells are empty', () => {
    assert.equal(table(['A', 'B'], [['x']]), 'A  B\nx');
  });

  test('control characters cannot break a line or reach the terminal', () => {
    const out = table(['A'], [['evil\n\u001b[2Jname\t']]);
    assert.equal(out.split('\n').length, 2);
    assert.doesNotMatch(out, /\u001b/);
    assert.equal(clean('a\u0007b\u2028c'), 'a?b?c');
  });

  test('pairs aligns values', () => {
    assert.deepEqual(pairs([['A', '1'], ['LONG', '2']]), ['A     1', 'LONG  2']);
  });
});

describe('small helpers', () => {
  test('age picks the largest whole unit', () => {
    const at = (ms: number) => new Date(NOW.getTime() - ms).toISOString();
    assert.equal(age(at(0), NOW), '0s');
    assert.equal(age(at(59_999), NOW), '59s');
    assert.equal(age(at(60_000), NOW), '1m');
    assert.equal(age(at(3_600_000 * 5 + 1), NOW), '5h');
    assert.equal(age(at(86_400_000 * 3), NOW), '3d');
    assert.equal(age(at(-5000), NOW), '0s', 'a clock ahead of ours is not negative');
    assert.equal(age('not a time', NOW), '?');
  });

  test('percent has one decimal and survives a zero capacity', () => {
    assert.equal(percent(3, 1000), '0.3%');
    assert.equal(percent(1000, 1000), '100.0%');
    assert.equal(percent(0, 0), '0.0%');
  });

  test('shortId and errorLine', () => {
    assert.equal(shortId('046c6933-58ab-4373'), '046c6933');
    assert.equal(errorLine('NOT_FOUND', 'no resource named x'), 'NOT_FOUND: no resource named x');
  });
});

describe('resources', () => {
  test('one row per resource, aligned under the headers', () => {
    const out = resources([res('books', 'w1'), res('a-much-longer-name', null, { spec: { kind: 'noop' }, revision: 12 })], NOW);
    const [header, ...rows] = out.split('\n');
    assert.match(header!, /^NAME\s+STATE\s+WORKER\s+KIND\s+TRIES\s+ID\s+AGE\s+REV\s+DETAIL$/);
    assert.equal(rows.length, 2);
    const starts = columnStarts(header!, ['NAME', 'STATE', 'WORKER', 'KIND', 'TRIES', 'ID']);
    assert.equal(rows[0]!.indexOf('running'), starts[1]);
    assert.equal(rows[1]!.indexOf('pending'), starts[1]);
    assert.equal(rows[0]!.indexOf('w1'), starts[2]);
    assert.equal(rows[1]!.indexOf(' - ') + 1, starts[2]);
    assert.equal(rows[0]!.indexOf('noop'), starts[3]);
    assert.equal(rows[0]!.indexOf('books-00'), starts[5]);
    assert.match(rows[0]!, /\s5s\s+7$/);
    assert.match(rows[1]!, /\s5s\s+12$/);
    // Right-aligned numbers end at the same column.
    assert.equal(rows[0]!.length, rows[1]!.length);
  });

  test('a pending resource shows why; a failed one its error; a completed one its result', () => {
    const out = resources(
      [
        res('a', null, { reason: 'no live worker runs kind crawl2' }),
        res('b', null, { state: 'failed', error: 'boom', failures: 3, attempt: 3 }),
        res('c', null, { state: 'completed', result: { pages: 3 } }),
      ],
      NOW,
    ).split('\n');
    assert.match(out[1]!, /no live worker runs kind crawl2$/);
    assert.match(out[2]!, /\s3\/3\s.*boom$/);
    assert.match(out[3]!, /\{"pages":3\}$/);
  });

  test('an extra column goes last', () => {
    const out = resources([res('books', 'w1')], NOW, { header: 'RESULT', value: () => 'created' });
    assert.match(out.split('\n')[0]!, /DETAIL\s+RESULT$/);
    assert.match(out.split('\n')[1]!, /created$/);
  });

  test('empty and summary', () => {
    assert.equal(resources([], NOW), 'No resources.');
    assert.equal(resourceSummary([res('a', 'w1')]), '1 resource: 1 running');
    assert.equal(resourceSummary([res('a', 'w1'), res('b', null)]), '2 resources: 1 pending, 1 running');
  });
});

describe('status', () => {
  test('shows the leader, the masters and each worker with load, capacity and use', () => {
    const out = status({
      leader: 'm2',
      term: 7,
      pending: 0,
      masters: ['m2', 'm1'],
      workers: [
        { id: 'w1', capacity: 1000, resources: 3, kinds: ['crawl', 'noop'], labels: { zone: 'eu' }, cordoned: false, draining: false },
        { id: 'w2', capacity: 10, resources: 10, kinds: ['noop'], labels: {}, cordoned: true, draining: false },
      ],
    });
    const lines = out.split('\n');
    assert.equal(lines[0], 'LEADER   m2');
    assert.equal(lines[1], 'MASTERS  m2 (leader), m1');
    assert.equal(lines[2], '');
    assert.match(lines[3]!, /^WORKER\s+LOAD\s+USED\s+KINDS\s+LABELS\s+FLAGS$/);
    assert.match(lines[4]!, /^w1\s+3\/1000\s+0\.3%\s+crawl,noop\s+zone=eu$/);
    assert.match(lines[5]!, /^w2\s+10\/10\s+100\.0%\s+noop\s+cordoned$/);
    assert.match(lines[6]!, /^total\s+13\/1010\s+1\.3%$/);
    // LOAD and USED are right-aligned: they end at the same column.
    assert.equal(new Set(lines.slice(3).map((l) => l.indexOf('%') === -1 ? l.indexOf('USED') + 3 : l.indexOf('%'))).size, 1);
  });

  test('no workers, no leader', () => {
    const out = status({ leader: '', term: 0, masters: [], workers: [], pending: 0 });
    assert.match(out, /LEADER\s+\(none\)/);
    assert.match(out, /No workers\./);
  });
});

describe('events', () => {
  const at = '2026-01-02T03:04:05.678Z';

  test('clock is HH:MM:SS.mmm', () => {
    assert.equal(clock(at, true), '03:04:05.678');
    assert.equal(clock('nope', true), '??:??:??.???');
  });

  test('each kind shows its key fields', () => {
    const cells = (ev: Record<string, unknown>) => eventCells({ at, by: 'm1', ...ev }, true);
    assert.deepEqual(cells({ kind: 'leader.elected', leader: 'm1', term: 42 }), ['03:04:05.678', 'leader.elected', 'm1', 'term 42', 'by m1']);
    assert.deepEqual(cells({ kind: 'leader.resigned', leader: 'm1', reason: 'stopping' }).slice(2, 4), ['m1', 'stopping']);
    assert.deepEqual(cells({ kind: 'worker.joined', worker: 'w1', capacity: 1000 }).slice(2, 4), ['w1', 'capacity 1000']);
    assert.deepEqual(cells({ kind: 'worker.lost', worker: 'w1' }).slice(2, 4), ['w1', '']);
    assert.deepEqual(cells({ kind: 'resource.placed', name: 'books', id: 'x', worker: 'w1' }).slice(2, 4), ['books', '-> w1']);
    assert.deepEqual(cells({ kind: 'resource.moved', name: 'books', from: 'w1', to: 'w2' }).slice(2, 4), ['books', 'w1 -> w2']);
    assert.deepEqual(cells({ kind: 'resource.moved', name: 'books', from: 'w1', to: null }).slice(2, 4), ['books', 'w1 -> (pending)']);
    assert.deepEqual(cells({ kind: 'resource.pending', name: 'books' }).slice(2, 4), ['books', 'no worker has room']);
    assert.deepEqual(cells({ kind: 'resource.deleted', name: 'books', worker: 'w2' }).slice(2, 4), ['books', 'was on w2']);
    assert.deepEqual(cells({ kind: 'resource.deleted', name: 'books', worker: null }).slice(2, 4), ['books', 'was pending']);
    assert.deepEqual(cells({ kind: 'task.started', name: 'books', worker: 'w1', taskKind: 'noop' }).slice(2, 4), ['books', 'on w1 (noop)']);
    assert.deepEqual(cells({ kind: 'task.stopped', name: 'books', worker: 'w1', reason: 'unassigned' }).slice(2, 4), ['books', 'on w1: unassigned']);
    assert.deepEqual(cells({ kind: 'some.future', x: 1 }).slice(1, 4), ['some.future', '', '{"x":1}']);
  });

  test('the aligner keeps kinds, subjects and details in columns', () => {
    const a = new EventAligner(true);
    const l1 = a.line({ kind: 'worker.lost', at, by: 'm1', worker: 'w1' });
    const l2 = a.line({ kind: 'resource.deleted', at, by: 'm1', name: 'books', worker: 'w1' });
    assert.equal(l1.indexOf('w1'), l2.indexOf('books'));
    assert.equal(l1.indexOf('by m1'), l2.indexOf('by m1'));
    assert.match(l1, /^03:04:05\.678 {2}worker\.lost {7}w1/);
  });
});

describe('watch: subjects and decoding', () => {
  test('filters become subjects; a family covers its kinds', () => {
    assert.deepEqual(eventSubjects([]), ['events.>']);
    assert.deepEqual(eventSubjects(['resource']), ['events.resource.>']);
    assert.deepEqual(eventSubjects(['task.started', 'resource']), ['events.resource.>', 'events.task.started']);
    assert.deepEqual(eventSubjects(['resource.placed', 'resource']), ['events.resource.>']);
    assert.throws(() => eventSubjects(['nope']), EventFilterError);
    assert.throws(() => eventSubjects(['resource.>']), EventFilterError);
  });

  test('the subject names the kind', () => {
    const data = json.encode({ kind: 'other', at: 'T', by: 'w1', name: 'books', id: 'i', worker: 'w1', taskKind: 'noop' });
    const ev = decodeEvent('events.task.started', data);
    assert.deepEqual(ev, { kind: 'task.started', at: 'T', by: 'w1', name: 'books', id: 'i', worker: 'w1', taskKind: 'noop' });
    const placed = decodeEvent('events.resource.placed', json.encode({ kind: 'resource.placed', at: 'T', by: 'm1', name: 'b' }));
    assert.equal(placed?.kind, 'resource.placed');
    assert.equal(placed?.taskKind, undefined);
  });

  test('malformed events are refused', () => {
    assert.equal(decodeEvent('events.x', new TextEncoder().encode('{not json')), undefined);
    assert.equal(decodeEvent('events.x', json.encode([1, 2])), undefined);
    assert.equal(decodeEvent('events.x', json.encode(null)), undefined);
  });
});
