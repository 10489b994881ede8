#!/usr/bin/env node
// The `gaffer` command: run a master, a worker or a local dev cluster, or act as a client.
// Exit codes: 0 ok, 1 request error, 2 bad usage, 3 cluster unreachable.

import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { DEFAULTS, parsePositiveInt, parseTtl, resolveProcess, UsageError, type CommonOptions } from './config.js';
import { rootLogger } from './log.js';
import { GafferClient } from './client.js';
import { ErrorCode, GafferError, UnavailableError } from './errors.js';
import { validateName, validateSpec } from './protocol.js';
import { BadRequestError } from './errors.js';

export const Exit = { ok: 0, request: 1, usage: 2, unreachable: 3 } as const;

function fail(code: number, message: string): never {
  process.stderr.write(`gaffer: ${message}\n`);
  process.exit(code);
}

function exitFor(err: unknown): never {
  if (err instanceof UsageError || err instanceof BadRequestError) fail(Exit.usage, err.message);
  if (err instanceof GafferError) {
    const unreachable = err instanceof UnavailableError && /cannot reach NATS|nobody serves/.test(err.message);
    fail(unreachable ? Exit.unreachable : Exit.request, `${err.code}: ${err.message}`);
  }
  fail(Exit.request, (err as Error)?.message ?? String(err));
}

/** serve starts a long-running role and wires SIGINT/SIGTERM to its graceful stop. */
async function serve(role: 'master' | 'worker', start: () => Promise<{ stop(): Promise<void> }>): Promise<void> {
  let proc: { stop(): Promise<void> };
  try {
    proc = await start();
  } catch (err) {
    fail(err instanceof UsageError ? Exit.usage : Exit.unreachable, `${role} cannot start: ${(err as Error).message}`);
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await proc.stop().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

function common(cmd: Command): Command {
  return cmd
    .option('--id <id>', 'process id, [A-Za-z0-9_-]{1,64} (env GAFFER_ID; default: generated)')
    .option('--nats <url>', 'NATS server URL(s), comma-separated (env NATS_URL)')
    .option('--etcd <urls>', 'etcd endpoints, comma-separated (env ETCD_ENDPOINTS)')
    .option('--ttl <seconds>', `lease TTL in seconds (env GAFFER_TTL; default ${DEFAULTS.ttlSeconds})`);
}

async function withClient<T>(program: Command, fn: (c: GafferClient) => Promise<T>): Promise<void> {
  const g = program.opts<{ nats?: string; timeout: string; json?: boolean }>();
  const url = g.nats ?? process.env.NATS_URL ?? DEFAULTS.natsUrl;
  let client: GafferClient;
  try {
    client = await GafferClient.connect(url, {
      timeoutMs: parsePositiveInt(g.timeout, '--timeout', DEFAULTS.requestTimeoutMs),
      user: process.env.NATS_USER,
      pass: process.env.NATS_PASSWORD,
    });
  } catch (err) {
    if (err instanceof UsageError) exitFor(err);
    fail(Exit.unreachable, (err as Error).message);
  }
  try {
    const out = await fn(client);
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } catch (err) {
    await client.close().catch(() => undefined);
    exitFor(err);
  }
  await client.close();
}

function parseSpec(raw: string): ReturnType<typeof validateSpec> {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new InvalidArgumentError('--spec must be JSON');
  }
  try {
    return validateSpec(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function nameArg(raw: string): string {
  try {
    return validateName(raw);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

export function buildProgram(): Command {
  const program = new Command('gaffer')
    .description('A control plane for long-running work over NATS and etcd')
    .option('--nats <url>', 'NATS server URL for client commands (env NATS_URL)')
    .option('--timeout <ms>', 'request deadline for client commands', String(DEFAULTS.requestTimeoutMs))
    // Program options only before the subcommand, so `master --nats` reaches the master.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  common(program.command('master').description('run a master (candidate leader)'))
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port')
    .option('--no-serve-clients', 'do not serve client subjects (lead only; for benchmarks)')
    .action(async (o: CommonOptions & { serveClients: boolean }) => {
      const cfg = { ...resolveProcess('master', o), serveClients: o.serveClients };
      rootLogger({ role: 'master', id: cfg.id });
      const { Master } = await import('../actors/master.js');
      await serve('master', () => Master.start(cfg));
    });

  common(program.command('worker').description('run a worker'))
    .option('--capacity <n>', `most resources this worker takes (default ${DEFAULTS.capacity})`)
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port')
    .action(async (o: CommonOptions & { capacity?: string }) => {
      const cfg = { ...resolveProcess('worker', o), capacity: parsePositiveInt(o.capacity, '--capacity', DEFAULTS.capacity) };
      rootLogger({ role: 'worker', id: cfg.id });
      const { Worker } = await import('../actors/worker.js');
      await serve('worker', () => Worker.start(cfg));
    });

  program
    .command('dev')
    .description('run a local cluster: nats-server, etcd, 3 masters, 3 workers')
    .option('--masters <n>', 'masters to run', '3')
    .option('--workers <n>', 'workers to run', '3')
    .option('--ttl <seconds>', 'lease TTL in seconds', String(DEFAULTS.ttlSeconds))
    .action(async (o: { masters: string; workers: string; ttl: string }) => {
      const { runDev } = await import('./dev.js');
      await runDev({
        masters: parsePositiveInt(o.masters, '--masters', 3),
        workers: parsePositiveInt(o.workers, '--workers', 3),
        ttlSeconds: parseTtl(o.ttl),
      }).catch((err) => fail(Exit.unreachable, `dev cluster failed: ${(err as Error).message}`));
    });

  program
    .command('add')
    .description('add a resource (idempotent: an existing name is returned unchanged)')
    .argument('<name>', 'resource name', nameArg)
    .option('--spec <json>', 'resource spec as a JSON object, e.g. {"kind":"noop"}', parseSpec)
    .action((name: string, o: { spec?: ReturnType<typeof validateSpec> }) => withClient(program, (c) => c.add(name, o.spec)));

  program
    .command('rm')
    .description('delete a resource')
    .argument('<name>', 'resource name', nameArg)
    .action((name: string) => withClient(program, (c) => c.delete(name)));

  program
    .command('get')
    .description('show one resource')
    .argument('<name>', 'resource name', nameArg)
    .action((name: string) => withClient(program, (c) => c.get(name)));

  program
    .command('ls')
    .description('list resources')
    .action(() => withClient(program, (c) => c.list()));

  program
    .command('status')
    .description('show the leader, masters and workers with their load')
    .action(() => withClient(program, (c) => c.status()));

  return program;
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        process.exit(Exit.ok);
      }
      process.exit(Exit.usage);
    }
    if (err instanceof UsageError) fail(Exit.usage, err.message);
    throw err;
  }
}

void main().catch((err) => fail(err instanceof GafferError && err.code === ErrorCode.BAD_REQUEST ? Exit.usage : Exit.request, (err as Error).message));
