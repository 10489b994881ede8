// Process logs as the scripts read them. Every process a run starts writes
// one JSON line per event to `<dir>/<id>.log`, and the file grows while the
// run goes on, so a script marks where a log stood (before a signal, at a
// restart, at its last look) and reads the whole lines written since.

import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalCluster } from '#devcluster/cluster.js';

/** logPath: where process `id` started in `dir` (a LocalCluster's, or the bench's own) writes its log. */
export function logPath(dir: string, id: string): string {
  return join(dir, `${id}.log`);
}

/** logSize: the log's length in bytes now, 0 before it exists; a mark for linesSince. */
export function logSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/**
 * linesSince reads the whole lines written after byte `from`, and where the
 * next read should start: a last line still being written is left for then.
 * Nothing (and `from` again) when the log does not exist yet.
 */
export function linesSince(file: string, from: number): { lines: string[]; next: number } {
  const size = logSize(file);
  if (size <= from) return { lines: [], next: from };
  const buf = Buffer.alloc(size - from);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, buf.length, from);
  } finally {
    closeSync(fd);
  }
  // A newline byte never occurs inside a multi-byte UTF-8 character, so cutting at the last one keeps every character whole.
  const end = buf.lastIndexOf(0x0a);
  if (end < 0) return { lines: [], next: from };
  return { lines: buf.subarray(0, end).toString('utf8').split('\n'), next: from + end + 1 };
}

/** workerLogs reads every worker's whole log, by worker id ('' for a worker that wrote none). */
export function workerLogs(c: LocalCluster): Record<string, string> {
  const logs: Record<string, string> = {};
  for (const id of c.workers.keys()) {
    const f = logPath(c.dir, id);
    logs[id] = existsSync(f) ? readFileSync(f, 'utf8') : '';
  }
  return logs;
}
