// runClient: what every client command does around its own work. Connect
// (exit 3 if NATS is unreachable), run within the command's deadline, print
// the data as JSON or the view for people, and exit with the right code.

import type { Command } from 'commander';
import { DEFAULTS, tlsFiles, UsageError } from '#platform/config.js';
import { GafferClient } from '#client/client.js';
import { GafferError } from '#protocol/errors.js';
import { Exit, fail, flushStdout, UnreachableError } from './exit.js';
import { merged, type ConnOptions } from './options.js';

export interface Ctx {
  client: GafferClient;
  json: boolean;
  timeoutMs: number;
  deadline: number;
  url: string;
}

/** Output is what a command prints on success: the data for --json and the view for people. */
export interface Output {
  data: unknown;
  human: string;
}

export async function connect(o: ConnOptions): Promise<{ client: GafferClient; url: string; timeoutMs: number }> {
  // Library logs go to stdout; a client's stdout is for its output only.
  process.env.GAFFER_LOG_LEVEL = 'silent';
  const url = o.nats ?? process.env.NATS_URL ?? DEFAULTS.natsUrl;
  const timeoutMs = o.timeout ?? DEFAULTS.requestTimeoutMs;
  try {
    const tls = tlsFiles('--nats', {
      ca: o.natsCa ?? process.env.NATS_CA,
      cert: o.natsCert ?? process.env.NATS_CERT,
      key: o.natsKey ?? process.env.NATS_KEY,
    });
    const client = await GafferClient.connect(url, {
      timeoutMs,
      user: o.natsUser ?? process.env.NATS_USER,
      pass: o.natsPass ?? process.env.NATS_PASSWORD,
      ...(tls ? { tls } : {}),
    });
    return { client, url, timeoutMs };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const cause = err instanceof GafferError ? err.message : (err as Error).message;
    throw new UnreachableError(cause);
  }
}

/** runClient connects, runs one command, prints its output, and exits with the right code. */
export async function runClient(program: Command, cmd: Command, fn: (ctx: Ctx) => Promise<Output>): Promise<void> {
  const o = merged(program, cmd);
  const started = Date.now();
  let conn: Awaited<ReturnType<typeof connect>>;
  try {
    conn = await connect(o);
  } catch (err) {
    return fail(err);
  }
  let out: Output;
  try {
    out = await fn({ ...conn, json: o.json === true, deadline: started + conn.timeoutMs });
  } catch (err) {
    await conn.client.close().catch(() => undefined);
    return fail(err);
  }
  await conn.client.close().catch(() => undefined);
  process.stdout.write(o.json ? `${JSON.stringify(out.data, null, 2)}\n` : `${out.human}\n`);
  await flushStdout();
  process.exit(Exit.ok);
}

/** withoutOk strips the wire's `ok: true` so --json prints only the data. */
export function withoutOk<T extends object>(reply: T): Omit<T, 'ok'> {
  const { ok: _ok, ...rest } = reply as T & { ok?: unknown };
  return rest;
}
