// The watchdog, for real: a process that starts it and is then paused is
// SIGKILLed by it; one that keeps turning is left alone, and the watchdog
// leaves with it when it exits by itself. (Real processes and real time, so
// it lives here rather than in the unit suite.)

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const WATCHDOG = fileURLToPath(new URL('../../src/platform/watchdog.js', import.meta.url));

/** run starts a process that starts its watchdog (limit ms), says "up", and exits by itself after lifeMs. */
function run(limitMs: number, lifeMs: number) {
  const dir = mkdtempSync(join(tmpdir(), 'gaffer-watchdog-'));
  const file = join(dir, 'watched.mjs');
  writeFileSync(
    file,
    `import { startWatchdog } from ${JSON.stringify(WATCHDOG)};
const w = startWatchdog(${limitMs});
setInterval(() => undefined, 50);
setTimeout(() => { w.stop(); process.exit(0); }, ${lifeMs});
process.stdout.write('up\\n');`,
  );
  const proc = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const up = new Promise<void>((resolve) => proc.stdout.once('data', () => resolve()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return { proc, up, exited, stderr: () => err, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('watchdog', () => {
  test('SIGKILLs a paused process', async () => {
    const r = run(500, 60_000);
    try {
      await r.up;
      r.proc.kill('SIGSTOP');
      const end = await r.exited;
      assert.equal(end.signal, 'SIGKILL');
      assert.match(r.stderr(), /gaffer watchdog: process \d+ sent no heartbeat/);
    } finally {
      r.proc.kill('SIGKILL');
      r.cleanup();
    }
  });

  test('leaves a live process alone, and it exits normally', async () => {
    const r = run(500, 1500);
    try {
      await r.up;
      const end = await r.exited;
      assert.deepEqual(end, { code: 0, signal: null });
    } finally {
      r.cleanup();
    }
  });

});
