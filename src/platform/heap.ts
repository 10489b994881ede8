// A heap figure that garbage does not inflate: with node --expose-gc, SIGUSR2
// makes a process collect and then log what stays live. The bench uses it to
// measure the leader's bytes per resource; nothing else needs it, and without
// --expose-gc the signal keeps its default meaning.

import type { Logger } from './log.js';

/** HeapLog is the message of the line the report writes; the bench looks for it. */
export const HeapLog = 'heap after a forced gc';

/** reportHeapOnSignal installs the SIGUSR2 report when gc is exposed; extra adds fields (e.g. the dedupe window's size). */
export function reportHeapOnSignal(log: Logger, extra: () => Record<string, number> = () => ({})): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') return;
  process.on('SIGUSR2', () => {
    // Twice: the first pass can leave objects that only weak references or finalizers kept.
    gc();
    gc();
    const m = process.memoryUsage();
    log.info({ heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss, ...extra() }, HeapLog);
  });
}
