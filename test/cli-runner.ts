// The built CLI as integration tests run it: in a clean environment (nothing
// from the caller's shell may point it elsewhere), to completion, and killed
// after a generous bound, so a hung CLI fails its test instead of hanging it.

import { execFile } from 'node:child_process';
import { CLI_PATH } from '#devcluster/cluster.js';

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** cliEnv is the caller's environment without what would point the CLI at another server or change its logs. */
export function cliEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['NATS_URL', 'NATS_USER', 'NATS_PASSWORD', 'GAFFER_LOG_LEVEL']) delete env[k];
  return env;
}

/** gaffer runs the CLI with `args`, `stdin` written to it if given. */
export function gaffer(args: string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI_PATH, ...args], { env: cliEnv(), timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
    if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
  });
}
