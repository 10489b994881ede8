// The `gaffer` command: run a master, a worker or a local dev cluster
// (roles.ts), or act as a client (commands.ts).
//
// Client commands print aligned tables for people and, with --json, exactly
// the data as one JSON document (watch: one JSON event per line) for scripts.
// Exit codes: 0 ok, 1 request error, 2 bad usage, 3 cluster unreachable.
//
// Options are positional: program options (--nats, --timeout, …) go before the
// command, and each command takes the same options after it, where they win.
// (Without that, the program would swallow `gaffer master --nats URL`.)

import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { DEFAULTS } from '#platform/config.js';
import { Exit, fail, flushStdout } from './exit.js';
import { connOptions, msArg } from './options.js';
import { examples } from './help.js';
import { addRoleCommands, type Roles } from './roles.js';
import { addClientCommands } from './commands.js';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export function buildProgram(roles: Roles): Command {
  const program = new Command('gaffer')
    .description('A control plane for long-running work over NATS and etcd')
    .version(version())
    .enablePositionalOptions()
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  connOptions(program).option('--timeout <ms>', `deadline for client commands (default ${DEFAULTS.requestTimeoutMs})`, msArg);
  program.addHelpText(
    'after',
    `
Client commands print tables; add --json for exactly the data (pipe it into jq).
Options before the command apply to it; the same options after it win.

Exit codes:
  0  ok
  1  the request failed (its code is printed, e.g. NOT_FOUND: no resource named x)
  2  bad usage (unknown option, invalid name or spec)
  3  the cluster is unreachable (cannot connect to NATS, or no master answers)
${examples([
  'gaffer dev',
  'gaffer add books --wait',
  'gaffer ls --worker w1',
  'gaffer --nats nats://10.0.0.5:4222 status --json | jq .leader',
  'gaffer watch resource task',
])}`,
  );

  addRoleCommands(program, roles);
  addClientCommands(program);
  return program;
}

/** run parses the command line and runs it; the process exits with the command's code. */
export async function run(roles: Roles): Promise<void> {
  // A reader that goes away (`gaffer ls | head`) is not an error of ours.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(Exit.ok);
  });
  const program = buildProgram(roles);
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; everything else commander reports (including help shown for a missing command) is usage.
      await flushStdout();
      process.exit(err.exitCode === 0 ? Exit.ok : Exit.usage);
    }
    await fail(err);
  }
}

