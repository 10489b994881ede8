// The chaos run's schedule checker (chaos/schedules.ts judge): fires doubled,
// lost (and not counted as skipped), or stalled, from a record as
// resource.get shows it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judge } from '#chaos/schedules.js';
import type { Resource } from '#protocol/messages.js';
import type { RunView } from '#protocol/schedule-ops.js';

const iso = (t: number) => new Date(t).toISOString();
const run = (n: number, t: number, cause: RunView['cause'] = 'schedule'): RunView => ({ run: n, fireTime: iso(t), cause, state: 'replaced', startedAt: iso(t), endedAt: iso(t + 1) });

function rec(fires: number[], skipped = 0, extra: RunView[] = []): Resource {
  const runs = [...fires.map((t, i) => run(i + 1, t)), ...extra].reverse();
  const [running, ...ended] = runs;
  return {
    name: 's', id: 'x', worker: 'w1', spec: {}, createdAt: iso(0), revision: 1, state: 'running', attempt: 1, failures: 0,
    schedule: { next: [], paused: true, queued: [], runs: runs.length, skipped, running: { ...running!, state: 'running' } },
    runs: ended,
  };
}

test('every fire time once: no finding', () => {
  assert.deepEqual(judge(rec([5000, 10000, 15000, 20000]), 5000, 25000), { findings: [], fires: 4 });
});

test('a fire time twice is doubled; triggers do not count', () => {
  const out = judge(rec([5000, 10000, 10000, 15000], 0, [run(9, 12000, 'trigger')]), 5000, 20000);
  assert.deepEqual(out.findings.map((f) => f.kind), ['fire-doubled']);
});

test('a missing fire time is lost unless the schedule counted a skip for it', () => {
  assert.deepEqual(judge(rec([5000, 15000, 20000]), 5000, 25000).findings.map((f) => f.kind), ['fire-lost']);
  assert.deepEqual(judge(rec([5000, 15000, 20000], 1), 5000, 25000).findings, []);
});

test('a schedule that stopped firing long before the end stalled', () => {
  assert.deepEqual(judge(rec([5000, 10000]), 5000, 60000).findings.map((f) => f.kind), ['fire-stalled']);
});
