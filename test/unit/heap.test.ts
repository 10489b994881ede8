// The heap report the bench reads: under --expose-gc, SIGUSR2 logs the live
// heap after a collection (with the extra fields); without it, nothing is
// installed and the signal keeps its default meaning.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const HEAP = fileURLToPath(new URL('../../src/platform/heap.js', import.meta.url));
const LOG = fileURLToPath(new URL('../../src/platform/log.js', import.meta.url));

/** run starts a process that installs the report, signals itself once it has, and prints what it logged. */
function run(execArgv: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  const script = `
    const { reportHeapOnSignal } = await import(${JSON.stringify(HEAP)});
    const { rootLogger } = await import(${JSON.stringify(LOG)});
    reportHeapOnSignal(rootLogger({ role: 'master', id: 'm1' }), () => ({ dedupeEntries: 7 }));
    process.kill(process.pid, 'SIGUSR2');
    setTimeout(() => process.exit(0), 300);
  `;
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [...execArgv, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code, signal) => resolve({ code, signal, out }));
  });
}

test('with --expose-gc, SIGUSR2 logs the heap after a collection, with the extra fields', async () => {
  const r = await run(['--expose-gc']);
  assert.equal(r.code, 0);
  const line = JSON.parse(r.out.trim().split('\n').at(-1)!) as Record<string, unknown>;
  assert.equal(line.msg, 'heap after a forced gc');
  assert.equal(typeof line.heapUsed, 'number');
  assert.ok((line.heapUsed as number) > 0);
  assert.equal(line.dedupeEntries, 7);
});

test('without --expose-gc nothing is installed: SIGUSR2 keeps its default (the process ends by it)', async () => {
  const r = await run([]);
  assert.equal(r.signal, 'SIGUSR2');
  assert.equal(r.out, '');
});
