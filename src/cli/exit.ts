// How the gaffer command ends: exit codes by error type (never by message
// text), and one line on stderr that names the error's code.

import { InvalidArgumentError } from 'commander';
import { UsageError } from '#platform/config.js';
import { GafferError, NoRespondersError } from '#protocol/errors.js';
import { errorLine } from './format.js';
import { EventFilterError } from './watch.js';

export const Exit = { ok: 0, request: 1, usage: 2, unreachable: 3 } as const;

/** UnreachableError: we could not connect to NATS at all. */
export class UnreachableError extends Error {
  override name = 'UnreachableError';
}

export function flushStdout(): Promise<void> {
  return new Promise((resolve) => process.stdout.write('', () => resolve()));
}

/** exitCodeFor maps a failure to its exit code by type, never by message text. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError || err instanceof InvalidArgumentError || err instanceof EventFilterError) return Exit.usage;
  if (err instanceof UnreachableError || err instanceof NoRespondersError) return Exit.unreachable;
  return Exit.request;
}

function describe(err: unknown): string {
  if (err instanceof GafferError) return errorLine(err.code, err.message);
  return err instanceof Error ? err.message : String(err);
}

export async function fail(err: unknown): Promise<never> {
  process.stderr.write(`gaffer: ${describe(err)}\n`);
  await flushStdout();
  process.exit(exitCodeFor(err));
}
