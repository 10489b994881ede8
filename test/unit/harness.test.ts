// The scripts' shared library: knobs from the environment, the results file,
// and no import circles among bench, chaos, fuzz, soak and harness.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { envNumber } from '#harness/env.js';
import { linesSince, logSize } from '#harness/logs.js';
import { repoPath, writeJson } from '#harness/runner.js';
import { convergence } from '#harness/snapshot.js';

test('envNumber: the fallback when unset or empty, the value when it keeps the rule, an error naming the key otherwise', () => {
  assert.equal(envNumber({}, 'K', 7), 7);
  assert.equal(envNumber({ K: '' }, 'K', 7), 7);
  assert.equal(envNumber({ K: '2.5' }, 'K', 7), 2.5);
  assert.equal(envNumber({ K: '-3' }, 'K', 7, { whole: true }), -3);
  assert.equal(envNumber({ K: '1' }, 'K', 7, { min: 1, whole: true }), 1);
  assert.throws(() => envNumber({ K: 'lots' }, 'K', 7), /^Error: K must be a number, not "lots"$/);
  assert.throws(() => envNumber({ K: '2.5' }, 'K', 7, { whole: true }), /K must be a whole number/);
  assert.throws(() => envNumber({ K: '0' }, 'K', 7, { min: 1 }), /K must be a number ≥ 1, not "0"/);
  assert.throws(() => envNumber({ K: 'Infinity' }, 'K', 7), /K must be a number/);
});

test('writeJson creates the directory and ends the file in a newline', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gaffer-harness-'));
  try {
    const path = join(dir, 'a', 'b', 'results.json');
    writeJson(path, { x: [1, 2] }, 1);
    const text = readFileSync(path, 'utf8');
    assert.equal(text, '{\n "x": [\n  1,\n  2\n ]\n}\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('linesSince reads the whole lines after a mark and leaves a line still being written for the next read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gaffer-harness-'));
  try {
    const file = join(dir, 'w1.log');
    assert.deepEqual(linesSince(file, 0), { lines: [], next: 0 });
    appendFileSync(file, '{"msg":"before"}\n');
    const mark = logSize(file);
    appendFileSync(file, '{"msg":"dé日"}\n{"msg":"half');
    const first = linesSince(file, mark);
    assert.deepEqual(first.lines, ['{"msg":"dé日"}']);
    appendFileSync(file, ' done"}\n');
    assert.deepEqual(linesSince(file, first.next), { lines: ['{"msg":"half done"}'], next: logSize(file) });
    assert.deepEqual(linesSince(file, logSize(file)).lines, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('convergence: every worker answered and nothing mismatches, else why in one line', () => {
  const list = [{ name: 'a', id: 'A', worker: 'w1' }];
  assert.deepEqual(convergence({ at: 0, list, running: { w1: [{ name: 'a', id: 'A' }], w2: [] } }, new Set()), { ok: true });
  assert.deepEqual(convergence({ at: 0, list, running: { w1: null, w2: [] } }, new Set()), { ok: false, why: 'w1 did not answer worker status' });
  const v = convergence({ at: 0, list, running: { w1: [], w2: [{ name: 'a', id: 'A' }] } }, new Set());
  assert.equal(v.ok, false);
  assert.match(v.ok ? '' : v.why, /^not converged: a runs on w2 but is assigned to w1; a listed \(id A\) on w1 but does not run there$/);
  assert.equal(v.ok ? 0 : v.mismatches?.length, 2);
  assert.deepEqual(convergence({ at: 0, list, running: { w1: [], w2: [{ name: 'a', id: 'A' }] } }, new Set(['a'])), { ok: true });
});

/** importsOf: the repository files a TypeScript source imports (type imports too), through relative paths and "#room/*" aliases. */
function importsOf(file: string, aliases: Record<string, string>): string[] {
  const out: string[] = [];
  for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'([^']+)'/gm)) {
    const spec = m[1]!;
    let target: string | undefined;
    if (spec.startsWith('.')) target = resolve(dirname(file), spec);
    for (const [k, v] of Object.entries(aliases)) {
      if (spec.startsWith(k.slice(0, -1))) target = repoPath(v.slice(0, -1).replace(/^\.\/dist\//, ''), spec.slice(k.length - 1));
    }
    if (target) out.push(target.replace(/\.js$/, '.ts'));
  }
  return out;
}

test('no import circles among bench, chaos, fuzz, soak and harness', () => {
  const aliases = (JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { imports: Record<string, string> }).imports;
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.push(p);
    }
  };
  for (const room of ['bench', 'chaos', 'fuzz', 'soak', 'harness']) walk(repoPath(room));
  const graph = new Map(files.map((f) => [f, importsOf(f, aliases).filter((t) => files.includes(t))]));
  assert.ok((graph.get(repoPath('chaos', 'config.ts')) ?? []).length > 0, 'the import reader sees chaos/config.ts import something');
  const circles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      circles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(repoPath(), p)).join(' -> '));
      return;
    }
    state.set(f, 'open');
    for (const t of graph.get(f) ?? []) visit(t, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  assert.deepEqual(circles, []);
});
