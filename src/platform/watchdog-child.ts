// The watchdog process (see watchdog.ts): argv is <limit ms> <pid>. It
// SIGKILLs <pid> when no heartbeat came over IPC for <limit ms>, and exits
// when the channel closes (the watched process ended by itself).

import { performance } from 'node:perf_hooks';
import { beatMs } from './watchdog.js';

const limitMs = Number(process.argv[2]);
const pid = Number(process.argv[3]);
if (!Number.isFinite(limitMs) || !Number.isInteger(pid) || pid <= 1) process.exit(2);

const tickMs = beatMs(limitMs);
let last = performance.now();
let due = last + tickMs;
process.on('message', () => {
  last = performance.now();
});
process.on('disconnect', () => process.exit(0));
// Ctrl-C in a terminal reaches the whole process group: the watched process
// stops gracefully and we leave with its channel, not before it.
process.on('SIGINT', () => undefined);
setInterval(() => {
  const now = performance.now();
  // We were not run either (the machine or the container was paused, or the
  // CPU starved us both): the silence is not the watched process's fault.
  if (now - due > limitMs / 2) last = now;
  due = now + tickMs;
  const silent = now - last;
  if (silent <= limitMs) return;
  process.stderr.write(`gaffer watchdog: process ${pid} sent no heartbeat for ${Math.round(silent)} ms (limit ${limitMs}); killing it\n`);
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Gone already.
  }
  process.exit(0);
}, tickMs);
