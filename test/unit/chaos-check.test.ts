// The chaos checker against synthetic logs: it must flag lost, resurrected,
// orphaned and overlapping runs, and must not flag what the product may
// legitimately do (a restarted worker re-running its own work, a late fence
// after a pause, a re-created name with a new id, ambiguous requests).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { check, checkOps, classify, violationCount, type OpRecord } from '#chaos/check.js';
import { buildRuns, findNameOverlaps, findOverlaps, parseWorkerLog, unexplainedLateStops } from '#chaos/runs.js';
import { median } from '#lib/stats.js';
import { schedule, FAULT_KINDS, type Death, type Pause } from '#harness/faults.js';
import { Rng } from '#harness/rng.js';
import { mismatches, type Snapshot } from '#harness/snapshot.js';

// Lines shaped like the worker's pino output: `id` is the process, `resourceId` the task's resource.
const started = (w: string, name: string, id: string, at: number): string =>
  `{"level":30,"time":${at},"role":"worker","id":"${w}","component":"worker","name":"${name}","resourceId":"${id}","at":${at},"msg":"task started"}`;
const stopped = (w: string, name: string, id: string, at: number, loggedAt = at, reason = 'unassigned'): string =>
  `{"level":30,"time":${loggedAt},"role":"worker","id":"${w}","component":"worker","name":"${name}","resourceId":"${id}","reason":"${reason}","at":${at},"loggedAt":${loggedAt},"msg":"task stopped"}`;
const registered = (w: string, t: number): string =>
  `{"level":30,"time":${t},"role":"worker","id":"${w}","component":"worker","lease":"1","capacity":1000,"msg":"worker registered"}`;

function runsOf(logs: Record<string, string[]>, deaths: Death[] = [], end = 100_000) {
  const lines = Object.entries(logs).flatMap(([w, ls]) => parseWorkerLog(w, ls.join('\n')).lines);
  return buildRuns(lines, deaths, end);
}

// --- parsing ---------------------------------------------------------------

test('parseWorkerLog reads the task id (not the process id) and skips other lines', () => {
  const text = [
    registered('w1', 900),
    started('w1', 'a', 'id-a', 1000),
    'Error: something on stderr',
    stopped('w1', 'a', 'id-a', 2000, 2100, 'fenced: keepalive overdue'),
    '',
  ].join('\n');
  const { lines, malformed } = parseWorkerLog('w1', text);
  assert.equal(malformed.length, 0);
  assert.deepEqual(
    lines.map((l) => [l.event, l.name, l.id, l.at, l.loggedAt, l.reason ?? null]),
    [
      ['started', 'a', 'id-a', 1000, 1000, null],
      ['stopped', 'a', 'id-a', 2000, 2100, 'fenced: keepalive overdue'],
    ],
  );
});

test('parseWorkerLog refuses a task line without its resource id', () => {
  const bad = `{"level":30,"time":1,"name":"a","id":"w1","at":1,"msg":"task started"}`;
  const { lines, malformed } = parseWorkerLog('w1', `${bad}\n{"msg":"task stopped" broken`);
  assert.equal(lines.length, 0);
  assert.equal(malformed.length, 2);
});

test('parseWorkerLog reads the resource id from resourceId, not the process id', () => {
  const line = `{"level":30,"time":5,"role":"worker","id":"w1","component":"worker","name":"a","resourceId":"rid-a","at":5,"msg":"task started"}`;
  const { lines, malformed } = parseWorkerLog('w1', line);
  assert.deepEqual(malformed, []);
  assert.equal(lines[0]?.id, 'rid-a');
});

// --- overlaps ---------------------------------------------------------------

test('a clean hand-over (stop at t, start elsewhere at t) is not an overlap', () => {
  const { runs } = runsOf({ w1: [started('w1', 'a', 'A', 1000), stopped('w1', 'a', 'A', 2000)], w2: [started('w2', 'a', 'A', 2000)] });
  assert.equal(runs.length, 2);
  assert.deepEqual(findOverlaps(runs), []);
});

test('VIOLATION: one resource on two workers at once is flagged with its length', () => {
  const { runs } = runsOf({
    w1: [started('w1', 'a', 'A', 1000), stopped('w1', 'a', 'A', 3000)],
    w2: [started('w2', 'a', 'A', 2500), stopped('w2', 'a', 'A', 4000)],
  });
  const o = findOverlaps(runs);
  assert.equal(o.length, 1);
  assert.equal(o[0]!.ms, 500);
  assert.deepEqual(o[0]!.workers, ['w1', 'w2']);
  assert.equal(o[0]!.from, 2500);
  assert.equal(o[0]!.to, 3000);
});

test('VIOLATION: a 1 ms overlap counts (no slack)', () => {
  const { runs } = runsOf({ w1: [started('w1', 'a', 'A', 1000), stopped('w1', 'a', 'A', 2001)], w2: [started('w2', 'a', 'A', 2000)] });
  assert.equal(findOverlaps(runs)[0]?.ms, 1);
});

test('a SIGKILLed worker\'s tasks end at its death; its successor after that is fine', () => {
  const logs = { w1: [started('w1', 'a', 'A', 1000)], w2: [started('w2', 'a', 'A', 2500)] };
  assert.deepEqual(findOverlaps(runsOf(logs, [{ worker: 'w1', at: 2000 }]).runs), []);
  // Started elsewhere before the killed worker was dead: flagged.
  const o = findOverlaps(runsOf(logs, [{ worker: 'w1', at: 3000 }]).runs);
  assert.equal(o.length, 1);
  assert.equal(o[0]!.ms, 500);
});

test('a worker restarted with the same id re-running its own resource is fine', () => {
  const { runs, anomalies } = runsOf(
    { w1: [started('w1', 'a', 'A', 1000), registered('w1', 2500), started('w1', 'a', 'A', 2600)] },
    [{ worker: 'w1', at: 2000 }],
  );
  assert.deepEqual(anomalies, []);
  assert.deepEqual(runs.map((r) => [r.from, r.to, r.end]), [[1000, 2000, 'killed'], [2600, 100_000, 'end-of-run']]);
  assert.deepEqual(findOverlaps(runs), []);
});

test('VIOLATION: another worker ran it meanwhile and was still running when the restarted worker took it back', () => {
  const { runs } = runsOf(
    { w1: [started('w1', 'a', 'A', 1000), started('w1', 'a', 'A', 2600)], w2: [started('w2', 'a', 'A', 2200)] },
    [{ worker: 'w1', at: 2000 }],
  );
  const o = findOverlaps(runs);
  assert.equal(o.length, 1);
  assert.deepEqual(o[0]!.workers, ['w2', 'w1']);
  assert.equal(o[0]!.from, 2600);
});

test('a paused worker that fences late ends at its lease deadline, not when it logged', () => {
  const lines = [started('w1', 'a', 'A', 1000), stopped('w1', 'a', 'A', 3000, 5000, 'fenced: keepalive overdue')];
  const { runs } = runsOf({ w1: lines, w2: [started('w2', 'a', 'A', 3500)] });
  assert.deepEqual(findOverlaps(runs), []);
  const parsed = parseWorkerLog('w1', lines.join('\n')).lines;
  assert.deepEqual(unexplainedLateStops(parsed, [{ target: 'w1', from: 2500, to: 4900 }], 250), []);
  // The same late stop with no pause to explain it is noted (not counted).
  assert.equal(unexplainedLateStops(parsed, [], 250).length, 1);
  assert.equal(unexplainedLateStops(parsed, [{ target: 'w2', from: 2500, to: 4900 }], 250).length, 1);
});

test('VIOLATION: a late fence whose claimed end is after the other worker started', () => {
  const { runs } = runsOf({
    w1: [started('w1', 'a', 'A', 1000), stopped('w1', 'a', 'A', 4000, 5000, 'fenced: keepalive overdue')],
    w2: [started('w2', 'a', 'A', 3500)],
  });
  assert.equal(findOverlaps(runs)[0]?.ms, 500);
});

test('a name re-created with a new id is a different resource: reported as info, not an overlap', () => {
  const { runs } = runsOf({ w1: [started('w1', 'a', 'A', 1000), stopped('w1', 'a', 'A', 3000)], w2: [started('w2', 'a', 'B', 2000)] });
  assert.deepEqual(findOverlaps(runs), []);
  const n = findNameOverlaps(runs);
  assert.equal(n.length, 1);
  assert.equal(n[0]!.ms, 1000);
});

test('VIOLATION: two runs still open at the end of the run overlap until then', () => {
  const { runs } = runsOf({ w1: [started('w1', 'a', 'A', 1000)], w2: [started('w2', 'a', 'A', 1500)] }, [], 9000);
  assert.equal(findOverlaps(runs)[0]?.ms, 7500);
});

test('a death closes only that worker\'s runs; odd lines become anomalies, not runs', () => {
  const { runs, anomalies } = runsOf(
    {
      w1: [started('w1', 'a', 'A', 1000), stopped('w1', 'zz', 'Z', 1100)],
      w2: [started('w2', 'b', 'B', 1000), started('w2', 'b', 'B', 1200)],
    },
    [{ worker: 'w1', at: 1500 }],
    2000,
  );
  assert.deepEqual(
    runs.map((r) => [r.worker, r.name, r.from, r.to, r.end]),
    [['w1', 'a', 1000, 1500, 'killed'], ['w2', 'b', 1000, 1200, 'restarted'], ['w2', 'b', 1200, 2000, 'end-of-run']],
  );
  assert.equal(anomalies.length, 2);
});

// --- acknowledged adds and deletes -------------------------------------------

let seq = 0;
function op(name: string, kind: 'add' | 'delete', start: number, outcome: Partial<OpRecord>): OpRecord {
  return { seq: ++seq, name, op: kind, start, end: start + 10, result: 'ok', ...outcome };
}

test('classify: NOT_FOUND on delete is definite; BAD_REQUEST had no effect; the rest is ambiguous', () => {
  assert.equal(classify('delete', 'NOT_FOUND'), 'not_found');
  assert.equal(classify('add', 'NOT_FOUND'), 'ambiguous');
  assert.equal(classify('add', 'BAD_REQUEST'), 'rejected');
  for (const c of ['TIMEOUT', 'UNAVAILABLE', 'NO_LEADER', 'INTERNAL', 'CLIENT_ERROR', undefined]) assert.equal(classify('add', c), 'ambiguous');
});

test('a clean history judges nothing wrong', () => {
  const ops = [
    op('a', 'add', 100, { created: true, id: 'A' }),
    op('a', 'add', 200, { created: false, id: 'A' }),
    op('a', 'delete', 300, { id: 'A' }),
    op('a', 'delete', 400, { result: 'not_found', code: 'NOT_FOUND' }),
    op('a', 'add', 500, { created: true, id: 'A2' }),
    op('b', 'add', 100, { created: true, id: 'B' }),
    op('b', 'delete', 200, { id: 'B' }),
  ];
  const r = checkOps(ops, [{ name: 'a', id: 'A2', worker: 'w1' }]);
  assert.deepEqual([r.lost, r.resurrected, r.eitherWay, r.anomalies], [[], [], [], []]);
});

test('VIOLATION lost: an acknowledged add missing from the final list, or replaced by another id', () => {
  const ops = [op('a', 'add', 100, { created: true, id: 'A' }), op('b', 'add', 100, { created: true, id: 'B' })];
  const r = checkOps(ops, [{ name: 'b', id: 'B-other', worker: 'w1' }]);
  assert.deepEqual(r.lost.map((f) => f.name), ['a', 'b']);
  assert.match(r.lost[1]!.detail, /replaced by B-other/);
  assert.deepEqual(r.resurrected, []);
});

test('VIOLATION resurrected: an acknowledged delete present in the final list', () => {
  const ops = [op('a', 'add', 100, { created: true, id: 'A' }), op('a', 'delete', 200, { id: 'A' })];
  const r = checkOps(ops, [{ name: 'a', id: 'A', worker: 'w2' }]);
  assert.equal(r.resurrected.length, 1);
  assert.equal(r.lost.length, 0);
  // Also a name never added at all.
  assert.equal(checkOps([], [{ name: 'z', id: 'Z', worker: 'w1' }]).resurrected.length, 1);
});

test('VIOLATIONS seen mid-run by later replies', () => {
  const ops = [
    // lost: the add after an acknowledged add created it anew
    op('a', 'add', 100, { created: true, id: 'A' }),
    op('a', 'add', 200, { created: true, id: 'A2' }),
    // resurrected: the add after an acknowledged delete found it present
    op('b', 'add', 100, { created: true, id: 'B' }),
    op('b', 'delete', 200, { id: 'B' }),
    op('b', 'add', 300, { created: false, id: 'B' }),
    // lost: the delete after an acknowledged add found nothing
    op('c', 'add', 100, { created: true, id: 'C' }),
    op('c', 'delete', 200, { result: 'not_found', code: 'NOT_FOUND' }),
    // resurrected: a second delete succeeded
    op('d', 'add', 100, { created: true, id: 'D' }),
    op('d', 'delete', 200, { id: 'D' }),
    op('d', 'delete', 300, { id: 'D' }),
  ];
  const r = checkOps(ops, [{ name: 'a', id: 'A2', worker: 'w1' }, { name: 'b', id: 'B', worker: 'w1' }]);
  assert.deepEqual(r.lost.map((f) => f.name), ['a', 'c']);
  assert.deepEqual(r.resurrected.map((f) => f.name), ['b', 'd']);
});

test('VIOLATION reanswered: an add answered created: false with an id no answer reported created', () => {
  // The 60-fault run: delete ok, delete NOT_FOUND, then an add whose own first attempt created the
  // resource while the answer the client got treated it as already there.
  const ops = [
    op('a', 'add', 100, { created: true, id: 'A' }),
    op('a', 'delete', 200, { id: 'A' }),
    op('a', 'delete', 300, { result: 'not_found', code: 'NOT_FOUND' }),
    op('a', 'add', 400, { created: false, id: 'A2' }),
  ];
  const r = checkOps(ops, [{ name: 'a', id: 'A2', worker: 'w1' }]);
  assert.equal(r.reanswered.length, 1);
  assert.match(r.reanswered[0]!.detail, /no answer ever reported created/);
  assert.deepEqual([r.lost, r.resurrected], [[], []]);
});

test('a name whose last request was ambiguous may be either way', () => {
  const ops = [op('a', 'add', 100, { created: true, id: 'A' }), op('a', 'delete', 200, { result: 'ambiguous', code: 'TIMEOUT' })];
  for (const final of [[], [{ name: 'a', id: 'A', worker: 'w1' }]]) {
    const r = checkOps(ops, final);
    assert.deepEqual([r.lost.length, r.resurrected.length], [0, 0]);
    assert.equal(r.eitherWay.length, 1);
    assert.equal(r.eitherWay[0]!.present, final.length === 1);
  }
});

test('after an ambiguous request the next acknowledged one sets the state without judging it', () => {
  const ops = [
    op('a', 'add', 100, { result: 'ambiguous', code: 'TIMEOUT' }),
    op('a', 'add', 200, { created: false, id: 'A' }), // the ambiguous add had been applied: fine
    op('b', 'add', 100, { created: true, id: 'B' }),
    op('b', 'delete', 200, { result: 'ambiguous', code: 'UNAVAILABLE' }),
    op('b', 'delete', 300, { result: 'not_found', code: 'NOT_FOUND' }), // the ambiguous delete had been applied: fine
  ];
  const r = checkOps(ops, [{ name: 'a', id: 'A', worker: 'w1' }]);
  assert.deepEqual([r.lost, r.resurrected, r.eitherWay], [[], [], []]);
});

test('VIOLATION with a note: an acknowledged delete undone later, maybe by an earlier ambiguous add applied late', () => {
  const ops = [op('a', 'add', 100, { result: 'ambiguous', code: 'TIMEOUT' }), op('a', 'delete', 30_000, { id: 'A' })];
  const r = checkOps(ops, [{ name: 'a', id: 'A', worker: 'w1' }]);
  assert.equal(r.resurrected.length, 1);
  assert.ok(r.resurrected[0]!.evidence.some((e) => /may have been applied late/.test(e)));
});

test('two requests on one name at once leave its state unknown (and are noted)', () => {
  const ops = [
    op('a', 'add', 100, { created: true, id: 'A' }),
    { ...op('a', 'delete', 105, { id: 'A' }), end: 200 },
  ];
  const r = checkOps(ops, [{ name: 'a', id: 'A', worker: 'w1' }]);
  assert.equal(r.anomalies.length, 1);
  assert.equal(r.eitherWay.length, 1);
  assert.deepEqual([r.lost, r.resurrected], [[], []]);
});

// --- orphans -------------------------------------------------------------------

const snap = (list: Snapshot['list'], running: Snapshot['running']): Snapshot => ({ at: 0, list, running });

test('a converged snapshot has no mismatches', () => {
  const s = snap([{ name: 'a', id: 'A', worker: 'w1' }, { name: 'b', id: 'B', worker: 'w2' }], {
    w1: [{ name: 'a', id: 'A' }],
    w2: [{ name: 'b', id: 'B' }],
    w3: [],
  });
  assert.deepEqual(mismatches(s), []);
});

test('VIOLATION orphaned: every kind of divergence is flagged, and skipped names are not', () => {
  const s = snap(
    [
      { name: 'a', id: 'A', worker: 'w1' }, // also runs on w2
      { name: 'b', id: 'B', worker: 'w2' }, // runs nowhere
      { name: 'c', id: 'C', worker: null }, // pending
      { name: 'd', id: 'D', worker: 'w1' }, // runs with an old id
      { name: 'e', id: 'E', worker: 'w3' }, // w3 does not answer
    ],
    { w1: [{ name: 'a', id: 'A' }, { name: 'd', id: 'D-old' }, { name: 'x', id: 'X' }], w2: [{ name: 'a', id: 'A' }], w3: null },
  );
  const m = mismatches(s);
  assert.deepEqual(m.map((f) => f.name).sort(), ['a', 'b', 'c', 'd', 'd', 'e', 'x']);
  assert.ok(m.every((f) => f.kind === 'orphaned'));
  assert.deepEqual(mismatches(s, new Set(['a', 'b', 'c', 'd', 'e', 'x'])), []);
});

// --- the whole check -------------------------------------------------------------

test('check ties it together: a clean run has no violations', () => {
  const r = check({
    ops: [op('a', 'add', 100, { created: true, id: 'A' }), op('b', 'add', 100, { created: true, id: 'B' }), op('b', 'delete', 300, { id: 'B' })],
    logs: {
      w1: [started('w1', 'a', 'A', 1000), stopped('w1', 'a', 'A', 3000, 5000, 'fenced: lease expired'), started('w1', 'b', 'B', 1000), stopped('w1', 'b', 'B', 1100)].join('\n'),
      w2: [started('w2', 'a', 'A', 3500), stopped('w2', 'a', 'A', 9000, 9000, 'worker stopping')].join('\n'),
    },
    deaths: [],
    pauses: [{ target: 'w1', from: 2000, to: 4900 }],
    final: snap([{ name: 'a', id: 'A', worker: 'w2' }], { w1: [], w2: [{ name: 'a', id: 'A' }] }),
    endOfRun: 10_000,
  });
  assert.equal(violationCount(r), 0, JSON.stringify(r, null, 1));
  assert.deepEqual(r.notes, []);
  // a on w1 until its claimed end, and again from the resume (4900) until the stop (no fence line): 100 ms beside w2, reported apart.
  assert.equal(r.runs, 4);
  assert.deepEqual(r.resumedPastLease, { overlaps: 1, longestMs: 100, runs: 1 });
  // The late fence mattered: counted until it was logged, w1 would overlap w2 by 1.5 s.
  assert.equal(r.lateStops, 1);
  assert.deepEqual(r.ifStopsCountedWhenLogged, { overlaps: 1, longestMs: 1500 });
});

test('check ties it together: every violation kind is counted', () => {
  const r = check({
    ops: [op('a', 'add', 100, { created: true, id: 'A' }), op('b', 'add', 100, { created: true, id: 'B' }), op('b', 'delete', 300, { id: 'B' })],
    logs: {
      w1: [started('w1', 'c', 'C', 1000)].join('\n'),
      w2: [started('w2', 'c', 'C', 1200)].join('\n'),
    },
    deaths: [],
    pauses: [],
    final: snap([{ name: 'b', id: 'B', worker: 'w1' }], { w1: [{ name: 'b', id: 'B' }, { name: 'c', id: 'C' }], w2: [{ name: 'c', id: 'C' }] }),
    endOfRun: 2000,
  });
  assert.deepEqual(
    [r.lost.length, r.resurrected.length, r.orphaned.length, r.overlaps.length, r.longestOverlapMs],
    [1, 1, 2, 1, 800],
  );
  assert.equal(violationCount(r), 5);
});

// --- small pieces -----------------------------------------------------------------

test('the fault schedule deals every kind in rounds and repeats for a seed', () => {
  const a = schedule(new Rng(7), FAULT_KINDS.length);
  assert.deepEqual([...a].sort(), [...FAULT_KINDS].sort());
  assert.deepEqual(schedule(new Rng(7), 30), schedule(new Rng(7), 30));
  assert.notDeepEqual(schedule(new Rng(7), 30), schedule(new Rng(8), 30));
  const r = new Rng(1);
  for (let i = 0; i < 1000; i++) {
    const x = r.between(3, 5);
    assert.ok(x >= 3 && x <= 5 && Number.isInteger(x));
  }
});

test('median', () => {
  assert.equal(median([]), undefined);
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([NaN, 2, Infinity]), 2);
});

test('a fractional lease deadline is floored: it cannot invent a sub-ms overlap', () => {
  const { runs } = runsOf({
    w1: [started('w1', 'a', 'A', 1000), stopped('w1', 'a', 'A', 3000.7, 5000, 'fenced: keepalive overdue')],
    w2: [started('w2', 'a', 'A', 3000)],
  });
  assert.deepEqual(findOverlaps(runs), []);
  const late = runsOf({
    w1: [started('w1', 'a', 'A', 1000), stopped('w1', 'a', 'A', 3001.2, 5000, 'fenced: keepalive overdue')],
    w2: [started('w2', 'a', 'A', 3000)],
  });
  assert.equal(findOverlaps(late.runs)[0]?.ms, 1);
});

// --- late fences refuted by the worker's own log ----------------------------------

const line = (w: string, t: number, msg: string, extra = ''): string =>
  `{"level":30,"time":${t},"role":"worker","id":"${w}","component":"worker"${extra},"msg":"${msg}"}`;

function runsWithActivity(logs: Record<string, string[]>, deaths: Death[] = [], end = 100_000, pauses: Pause[] = []) {
  const parsed = Object.entries(logs).map(([w, ls]) => parseWorkerLog(w, ls.join('\n')));
  return buildRuns(parsed.flatMap((p) => p.lines), deaths, end, parsed.flatMap((p) => p.activity), pauses);
}

test('resumed past its lease: a paused worker runs from SIGCONT until its fence begins, marked apart from violations', () => {
  // The stall line is written at the resume: the process (and its task threads) ran then.
  const { runs } = runsWithActivity(
    {
      w1: [
        started('w1', 'a', 'A', 1000),
        line('w1', 4002, 'event loop stalled', ',"ms":1500'),
        line('w1', 4010, 'fencing: stopping every task'),
        stopped('w1', 'a', 'A', 3000, 4200, 'fenced: keepalive overdue (forced)'),
      ],
      w2: [started('w2', 'a', 'A', 3500)],
    },
    [],
    100_000,
    [{ target: 'w1', from: 2500, to: 4000 }],
  );
  assert.deepEqual(runs.filter((r) => r.worker === 'w1').map((r) => [r.from, r.to, r.end]), [[1000, 3000, 'stopped'], [4000, 4010, 'resumed-past-lease']]);
  const o = findOverlaps(runs);
  assert.deepEqual([o.length, o[0]?.from, o[0]?.ms, o[0]?.runs.some((r) => r.end === 'resumed-past-lease')], [1, 4000, 10, true]);
});

test('VIOLATION still: a task started after the resume, before the fence, is new work past the lease', () => {
  const { runs } = runsWithActivity(
    {
      w1: [
        started('w1', 'b', 'B', 4001),
        line('w1', 4010, 'fencing: stopping every task'),
        stopped('w1', 'b', 'B', 3000, 4010, 'fenced: keepalive overdue'),
      ],
      w2: [started('w2', 'b', 'B', 3800)],
    },
    [],
    100_000,
    [{ target: 'w1', from: 2500, to: 4000 }],
  );
  assert.deepEqual(runs.filter((r) => r.worker === 'w1').map((r) => r.end), ['ran-after-claimed-end']);
  assert.equal(findOverlaps(runs)[0]?.ms, 9);
});

test('a late fence with only fence lines after its claimed end keeps the claim', () => {
  const { runs, refuted } = runsWithActivity({
    w1: [
      started('w1', 'a', 'A', 1000),
      line('w1', 4000, 'lease keepalive overdue; fencing'),
      line('w1', 4000, 'fencing: stopping every task'),
      stopped('w1', 'a', 'A', 3000, 4001, 'fenced: keepalive overdue'),
    ],
    w2: [started('w2', 'a', 'A', 3500)],
  });
  assert.deepEqual(refuted, []);
  assert.deepEqual(findOverlaps(runs), []);
});

test('VIOLATION: a task started after the lease deadline, before the late fence, runs until the fence', () => {
  // Resumed from a pause, the worker handles a queued assign before its overdue fence fires.
  const { runs, refuted, anomalies } = runsWithActivity({
    w1: [
      started('w1', 'a', 'A', 1000),
      started('w1', 'b', 'B', 4000),
      line('w1', 4005, 'fencing: stopping every task'),
      stopped('w1', 'a', 'A', 3000, 4005, 'fenced: keepalive overdue'),
      stopped('w1', 'b', 'B', 3000, 4005, 'fenced: keepalive overdue'),
    ],
    w2: [started('w2', 'b', 'B', 3800)],
  });
  assert.deepEqual(anomalies, []);
  assert.equal(refuted.length, 2, 'both claims refuted by the start line of b');
  const w1 = runs.filter((r) => r.worker === 'w1').map((r) => [r.name, r.from, r.to, r.end]);
  assert.deepEqual(w1, [
    ['a', 1000, 3000, 'stopped'],
    ['a', 4000, 4005, 'ran-after-claimed-end'],
    ['b', 4000, 4005, 'ran-after-claimed-end'],
  ]);
  const o = findOverlaps(runs);
  assert.equal(o.length, 1);
  assert.deepEqual([o[0]!.name, o[0]!.from, o[0]!.to, o[0]!.ms], ['b', 4000, 4005, 5]);
});

test('VIOLATION: any other line after the claimed end (a reconnect) refutes it; the pause itself still does not count', () => {
  const { runs, refuted } = runsWithActivity({
    w1: [
      started('w1', 'a', 'A', 1000),
      line('w1', 3700, 'nats connection', ',"event":"reconnect"'),
      stopped('w1', 'a', 'A', 3000, 3710, 'fenced: keepalive overdue'),
    ],
    w2: [started('w2', 'a', 'A', 3500)],
  });
  assert.equal(refuted.length, 1);
  assert.deepEqual(runs.filter((r) => r.worker === 'w1').map((r) => [r.from, r.to]), [[1000, 3000], [3700, 3710]]);
  const o = findOverlaps(runs);
  assert.deepEqual([o.length, o[0]?.from, o[0]?.ms], [1, 3700, 10]);
});
