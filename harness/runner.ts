// The tail every script (bench, chaos, fuzz, soak) shares: its log lines, its
// results file, and how main's outcome becomes the process's exit code.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type Log = (line: string) => void;

/** elapsedLog writes `[name +12.3s] line` to stderr, counting seconds from t0 (a Date.now()). */
export function elapsedLog(name: string, t0: number): Log {
  return (s) => void process.stderr.write(`[${name} +${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}\n`);
}

/** clockLog writes `[name 12:34:56] line` to stderr, with the UTC time of day. */
export function clockLog(name: string): Log {
  return (s) => void process.stderr.write(`[${name} ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
}

// dist/harness/runner.js -> <repo>
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** repoPath is a path inside the repository, where results go by default (the scripts run from dist/). */
export function repoPath(...parts: string[]): string {
  return join(repoRoot, ...parts);
}

/** writeJson writes `value` as indented JSON ending in a newline, creating its directory first. */
export function writeJson(path: string, value: unknown, indent = 2): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(value, null, indent)}\n`);
}

/** isEntryPoint says whether the module at `url` (its import.meta.url) is the script node was started with, not one imported (by a test, say). */
export function isEntryPoint(url: string): boolean {
  return process.argv[1] !== undefined && url === pathToFileURL(process.argv[1]).href;
}

export interface RunOptions {
  /** The exit code when main throws: kept apart from main's own codes, so "the run failed" never reads as a verdict. */
  crashCode: number;
  /** Whether SIGINT and SIGTERM end the run at once (130, 143); false for a script that stops its cluster itself on a signal. */
  exitOnSignal?: boolean;
}

/**
 * runMain runs a script's main and exits with the code it returns, or with
 * opts.crashCode (the stack on stderr) when it throws. Signals end the run
 * through process.exit, so every Child the script started is SIGKILLed on the
 * way out.
 */
export function runMain(name: string, main: () => Promise<number>, opts: RunOptions): void {
  if (opts.exitOnSignal !== false) {
    process.on('SIGINT', () => process.exit(130));
    process.on('SIGTERM', () => process.exit(143));
  }
  main().then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`${name}: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(opts.crashCode);
    },
  );
}
