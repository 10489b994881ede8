#!/usr/bin/env node
// The `gaffer` command: run a master, a worker or a local dev cluster, or act
// as a client (add, rm, get, ls, status, watch).
//
// Client commands print aligned tables for people and, with --json, exactly
// the data as one JSON document (watch: one JSON event per line) for scripts.
// Exit codes: 0 ok, 1 request error, 2 bad usage, 3 cluster unreachable.
//
// Options are positional: program options (--nats, --timeout, …) go before the
// command, and each command takes the same options after it, where they win.
// (Without that, the program would swallow `gaffer master --nats URL`.)

import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { DEFAULTS, parsePositiveInt, parseTtl, resolveProcess, UsageError, type CommonOptions, type ProcessConfig } from './config.js';
import { rootLogger } from './log.js';
import { GafferClient } from './client.js';
import { ErrorCode, GafferError, NoRespondersError, NotFoundError, TimeoutError } from './errors.js';
import { validateId, validateName, validateSpec, type AddResult, type Resource, type Spec } from './protocol.js';
import { ClientSubject, subjects } from './subjects.js';
import * as fmt from './format.js';
import { decodeEvent, eventSubjects, EventFilterError, watch } from './watch.js';

export const Exit = { ok: 0, request: 1, usage: 2, unreachable: 3 } as const;

/** UnreachableError: we could not connect to NATS at all. */
class UnreachableError extends Error {
  override name = 'UnreachableError';
}

function flushStdout(): Promise<void> {
  return new Promise((resolve) => process.stdout.write('', () => resolve()));
}

/** exitCodeFor maps a failure to its exit code by type, never by message text. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError || err instanceof InvalidArgumentError || err instanceof EventFilterError) return Exit.usage;
  if (err instanceof UnreachableError || err instanceof NoRespondersError) return Exit.unreachable;
  return Exit.request;
}

function describe(err: unknown): string {
  if (err instanceof GafferError) return fmt.errorLine(err.code, err.message);
  return err instanceof Error ? err.message : String(err);
}

async function fail(err: unknown): Promise<never> {
  process.stderr.write(`gaffer: ${describe(err)}\n`);
  await flushStdout();
  process.exit(exitCodeFor(err));
}

// --- option parsers (commander reports their errors and we exit 2) ---------

function invalid(fn: (raw: string) => unknown) {
  return (raw: string) => {
    try {
      return fn(raw);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

const nameArg = invalid(validateName) as (raw: string) => string;
const workerArg = invalid((raw) => validateId(raw, 'worker')) as (raw: string) => string;
const msArg = invalid((raw) => parsePositiveInt(raw, '--timeout', DEFAULTS.requestTimeoutMs)) as (raw: string) => number;
const specArg = invalid((raw) => {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new Error('--spec must be a JSON object, e.g. \'{"kind":"noop"}\'');
  }
  return validateSpec(v);
}) as (raw: string) => Spec;

// --- connection options ------------------------------------------------------

interface ConnOptions {
  nats?: string;
  natsUser?: string;
  natsPass?: string;
  timeout?: number;
  json?: boolean;
}

function connOptions(cmd: Command): Command {
  return cmd
    .option('--nats <url>', 'NATS server URL(s), comma-separated (env NATS_URL)')
    .option('--nats-user <user>', 'NATS user (env NATS_USER)')
    .option('--nats-pass <password>', 'NATS password (env NATS_PASSWORD; prefer the env, flags show in ps)');
}

function clientOptions(cmd: Command, opts: { json?: boolean } = {}): Command {
  connOptions(cmd).option('--timeout <ms>', `deadline for the whole command (default ${DEFAULTS.requestTimeoutMs})`, msArg);
  if (opts.json !== false) cmd.option('--json', 'print exactly the data as JSON, for scripts');
  return cmd;
}

/** merged gives a command's connection options, falling back to the program's. */
function merged(program: Command, cmd: Command): ConnOptions {
  const g = program.opts<ConnOptions>();
  const o = cmd.opts<ConnOptions>();
  return {
    nats: o.nats ?? g.nats,
    natsUser: o.natsUser ?? g.natsUser,
    natsPass: o.natsPass ?? g.natsPass,
    timeout: o.timeout ?? g.timeout,
    json: o.json ?? false,
  };
}

/** processConfig resolves a master's or worker's config; flags win over the environment. */
function processConfig(role: string, o: CommonOptions & ConnOptions, program: Command): ProcessConfig {
  const g = program.opts<ConnOptions>();
  const nats = o.nats ?? g.nats;
  const cfg = resolveProcess(role, { ...o, ...(nats !== undefined ? { nats } : {}) });
  const user = o.natsUser ?? g.natsUser;
  const pass = o.natsPass ?? g.natsPass;
  if (user) cfg.natsUser = user;
  if (pass) cfg.natsPass = pass;
  return cfg;
}

// --- long-running roles ------------------------------------------------------

/** serve starts a long-running role and wires SIGINT/SIGTERM to its graceful stop. */
async function serve(role: 'master' | 'worker', start: () => Promise<{ stop(): Promise<void> }>): Promise<void> {
  let proc: { stop(): Promise<void> };
  try {
    proc = await start();
  } catch (err) {
    process.stderr.write(`gaffer: ${role} cannot start: ${(err as Error).message}\n`);
    process.exit(err instanceof UsageError ? Exit.usage : Exit.unreachable);
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

function processOptions(cmd: Command): Command {
  return connOptions(cmd.option('--id <id>', 'process id, [A-Za-z0-9_-]{1,64} (env GAFFER_ID; default: generated)'))
    .option('--etcd <urls>', 'etcd endpoints, comma-separated (env ETCD_ENDPOINTS)')
    .option('--ttl <seconds>', `lease TTL in seconds (env GAFFER_TTL; default ${DEFAULTS.ttlSeconds})`)
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port (env GAFFER_METRICS_PORT)');
}

// --- client commands ---------------------------------------------------------

interface Ctx {
  client: GafferClient;
  json: boolean;
  timeoutMs: number;
  deadline: number;
  url: string;
}

/** Output is what a command prints on success: the data for --json and the view for people. */
interface Output {
  data: unknown;
  human: string;
}

async function connect(o: ConnOptions): Promise<{ client: GafferClient; url: string; timeoutMs: number }> {
  // Library logs go to stdout; a client's stdout is for its output only.
  process.env.GAFFER_LOG_LEVEL = 'silent';
  const url = o.nats ?? process.env.NATS_URL ?? DEFAULTS.natsUrl;
  const timeoutMs = o.timeout ?? DEFAULTS.requestTimeoutMs;
  try {
    const client = await GafferClient.connect(url, {
      timeoutMs,
      user: o.natsUser ?? process.env.NATS_USER,
      pass: o.natsPass ?? process.env.NATS_PASSWORD,
    });
    return { client, url, timeoutMs };
  } catch (err) {
    const cause = err instanceof GafferError ? err.message : (err as Error).message;
    throw new UnreachableError(cause);
  }
}

/** runClient connects, runs one command, prints its output, and exits with the right code. */
async function runClient(program: Command, cmd: Command, fn: (ctx: Ctx) => Promise<Output>): Promise<void> {
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
function withoutOk<T extends object>(reply: T): Omit<T, 'ok'> {
  const { ok: _ok, ...rest } = reply as T & { ok?: unknown };
  return rest;
}

/** Progress reports a wait on stderr: one updating line on a terminal, short lines on state changes otherwise. */
class Progress {
  private state = 'adding';
  private timer: NodeJS.Timeout | undefined;
  private readonly t0 = Date.now();
  private readonly tty = process.stderr.isTTY === true;

  constructor(private readonly what: string) {
    if (this.tty) this.timer = setInterval(() => this.draw(), 200);
  }

  update(state: string): void {
    if (state === this.state) return;
    this.state = state;
    if (this.tty) this.draw();
    else process.stderr.write(`gaffer: ${this.what}: ${state}\n`);
  }

  private draw(): void {
    const secs = ((Date.now() - this.t0) / 1000).toFixed(1);
    process.stderr.write(`\r\x1b[2Kwaiting for ${this.what}: ${this.state} (${secs}s)`);
  }

  done(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.tty) process.stderr.write('\r\x1b[2K');
  }
}

function left(ctx: Ctx): number {
  return Math.max(1, ctx.deadline - Date.now());
}

/**
 * addAndWait adds a resource and resolves once a worker reports it running:
 * from `events.task.started` (subscribed before the add is sent, so the event
 * cannot be missed) or, as a fallback, by polling the assigned worker's
 * status. Everything happens within the command's deadline.
 */
async function addAndWait(ctx: Ctx, name: string, spec: Spec | undefined): Promise<AddResult & { runningOn: string }> {
  const { nc } = ctx.client;
  const progress = new Progress(name);
  let id: string | undefined;
  const started = new Map<string, string>(); // resource id -> worker, from events
  let settle: (worker: string) => void = () => undefined;
  const running = new Promise<string>((resolve) => (settle = resolve));
  let settled = false;
  running.then(() => (settled = true), () => undefined);

  const subs = [
    nc.subscribe(subjects.event('task.started'), {
      callback: (_err, msg) => {
        const ev = decodeEvent(msg.subject, msg.data);
        if (ev?.name !== name || typeof ev.id !== 'string' || typeof ev.worker !== 'string') return;
        started.set(ev.id, ev.worker);
        if (ev.id === id) settle(ev.worker);
      },
    }),
    nc.subscribe(subjects.event('resource.>'), {
      callback: (_err, msg) => {
        const ev = decodeEvent(msg.subject, msg.data);
        if (ev?.name !== name || (id !== undefined && ev.id !== id)) return;
        if (ev.kind === 'resource.placed') progress.update(`placed on ${String(ev.worker)}`);
        else if (ev.kind === 'resource.moved') progress.update(ev.to == null ? 'pending: no worker has room' : `moved to ${String(ev.to)}`);
        else if (ev.kind === 'resource.pending') progress.update('pending: no worker has room');
        else if (ev.kind === 'resource.deleted') progress.update('deleted');
      },
    }),
  ];
  let timer: NodeJS.Timeout | undefined;
  try {
    await nc.flush();
    const body = spec === undefined ? { name } : { name, spec };
    const res = withoutOk(await ctx.client.call<AddResult>(ClientSubject.add, body, left(ctx)));
    id = res.resource.id;
    const early = started.get(id);
    if (early) settle(early);
    progress.update(res.resource.worker ? `placed on ${res.resource.worker}` : 'pending: no worker has room');

    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TimeoutError(`${name} was not reported running within ${ctx.timeoutMs} ms`)),
        left(ctx),
      );
    });
    const poll = async (): Promise<void> => {
      for (let delay = 200; !settled; delay = Math.min(delay * 2, 1000)) {
        const worker = await whereRunning(ctx, name, (cur) => (id = cur));
        if (worker) return settle(worker);
        await new Promise((r) => setTimeout(r, Math.min(delay, left(ctx))));
      }
    };
    const runningOn = await Promise.race([running, deadline, poll().then(() => running)]);
    progress.update(`running on ${runningOn}`);
    return { ...res, runningOn };
  } finally {
    settled = true;
    if (timer) clearTimeout(timer);
    progress.done();
    for (const s of subs) s.unsubscribe();
  }
}

/** whereRunning asks where a resource is assigned and whether that worker runs it; NOT_FOUND if it is gone. */
async function whereRunning(ctx: Ctx, name: string, seen: (id: string) => void): Promise<string | undefined> {
  const step = () => Math.min(1000, left(ctx));
  let r: Resource;
  try {
    r = (await ctx.client.call<{ resource: Resource }>(ClientSubject.get, { name }, step())).resource;
  } catch (err) {
    if (err instanceof GafferError && err.code === ErrorCode.NOT_FOUND) throw new NotFoundError(`${name} was deleted while we waited`);
    return undefined;
  }
  seen(r.id);
  if (!r.worker) return undefined;
  try {
    const st = await ctx.client.call<{ running: string[] }>(subjects.workerStatus(r.worker), {}, step());
    return st.running.includes(name) ? r.worker : undefined;
  } catch {
    return undefined; // the worker is starting, paused or gone; keep waiting
  }
}

const examples = (lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export function buildProgram(): Command {
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

  processOptions(program.command('master').description('run a master (candidate leader)'))
    .option('--no-serve-clients', 'do not serve client subjects (lead only; for benchmarks)')
    .addHelpText('after', examples(['gaffer master --id m1 --nats nats://127.0.0.1:4222 --etcd http://127.0.0.1:2379 --ttl 3']))
    .action(async (o: CommonOptions & ConnOptions & { serveClients: boolean }) => {
      const cfg = { ...processConfig('master', o, program), serveClients: o.serveClients };
      rootLogger({ role: 'master', id: cfg.id });
      const { Master } = await import('../actors/master.js');
      await serve('master', () => Master.start(cfg));
    });

  processOptions(program.command('worker').description('run a worker'))
    .option('--capacity <n>', `most resources this worker takes (default ${DEFAULTS.capacity})`)
    .addHelpText('after', examples(['gaffer worker --id w1 --capacity 500 --nats nats://127.0.0.1:4222']))
    .action(async (o: CommonOptions & ConnOptions & { capacity?: string }) => {
      const cfg = { ...processConfig('worker', o, program), capacity: parsePositiveInt(o.capacity, '--capacity', DEFAULTS.capacity) };
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
    .addHelpText('after', examples(['gaffer dev', 'gaffer dev --masters 1 --workers 5']))
    .action(async (o: { masters: string; workers: string; ttl: string }) => {
      const { runDev } = await import('./dev.js');
      await runDev({
        masters: parsePositiveInt(o.masters, '--masters', 3),
        workers: parsePositiveInt(o.workers, '--workers', 3),
        ttlSeconds: parseTtl(o.ttl),
      }).catch((err) => {
        process.stderr.write(`gaffer: dev cluster failed: ${(err as Error).message}\n`);
        process.exit(Exit.unreachable);
      });
    });

  const add = clientOptions(program.command('add'))
    .description('add a resource (idempotent: an existing name is returned unchanged)')
    .argument('<name>', 'resource name, [A-Za-z0-9][A-Za-z0-9._-]{0,127}', nameArg)
    .option('--spec <json>', 'resource spec as a JSON object, e.g. {"kind":"noop"}', specArg)
    .option('--wait', 'return once a worker reports the task running (within --timeout)')
    .addHelpText(
      'after',
      examples([
        'gaffer add books',
        'gaffer add books --spec \'{"kind":"noop"}\' --wait --timeout 30000',
        'gaffer add books --json | jq -r .resource.worker',
      ]),
    )
    .action((name: string, o: { spec?: Spec; wait?: boolean }) =>
      runClient(program, add, async (ctx) => {
        if (o.wait) {
          const res = await addAndWait(ctx, name, o.spec);
          const result = `${res.created ? 'created' : 'exists'}, running`;
          const shown = { ...res.resource, worker: res.runningOn };
          return { data: res, human: fmt.resources([shown], new Date(), { header: 'RESULT', value: () => result }) };
        }
        const res = withoutOk(await ctx.client.add(name, o.spec));
        const result = res.created ? 'created' : 'exists';
        return { data: res, human: fmt.resources([res.resource], new Date(), { header: 'RESULT', value: () => result }) };
      }),
    );

  const rm = clientOptions(program.command('rm'))
    .description('delete a resource (its task stops on its worker)')
    .argument('<name>', 'resource name', nameArg)
    .addHelpText('after', examples(['gaffer rm books', 'gaffer rm books --json']))
    .action((name: string) =>
      runClient(program, rm, async (ctx) => {
        const r = await ctx.client.delete(name);
        return { data: r, human: fmt.resources([r], new Date(), { header: 'RESULT', value: () => 'deleted' }) };
      }),
    );

  const get = clientOptions(program.command('get'))
    .description('show one resource')
    .argument('<name>', 'resource name', nameArg)
    .addHelpText('after', examples(['gaffer get books', 'gaffer get books --json | jq .spec']))
    .action((name: string) =>
      runClient(program, get, async (ctx) => {
        const r = await ctx.client.get(name);
        return { data: r, human: fmt.resources([r], new Date()) };
      }),
    );

  const ls = clientOptions(program.command('ls'))
    .description('list resources, sorted by name')
    .option('--worker <id>', 'only resources assigned to this worker', workerArg)
    .addHelpText('after', examples(['gaffer ls', 'gaffer ls --worker w1', 'gaffer ls --json | jq -r \'.[] | select(.worker == null) | .name\'']))
    .action((o: { worker?: string }) =>
      runClient(program, ls, async (ctx) => {
        const all = await ctx.client.list();
        const list = o.worker === undefined ? all : all.filter((r) => r.worker === o.worker);
        const where = o.worker === undefined ? '' : ` on ${o.worker}`;
        const human = list.length === 0 ? `No resources${where}.` : `${fmt.resources(list, new Date())}\n\n${fmt.resourceSummary(list)}${where}`;
        return { data: list, human };
      }),
    );

  const status = clientOptions(program.command('status'))
    .description('show the leader, the masters, and each worker with its load and capacity')
    .addHelpText('after', examples(['gaffer status', 'gaffer status --json | jq \'.workers[] | select(.resources > 0)\'']))
    .action(() =>
      runClient(program, status, async (ctx) => {
        const s = withoutOk(await ctx.client.status());
        return { data: s, human: fmt.status(s) };
      }),
    );

  const watchCmd = connOptions(program.command('watch'))
    .description('tail what the cluster does, live (events.>), one line per event; Ctrl-C stops')
    .argument('[filters...]', 'event families (leader, worker, resource, task) or kinds (e.g. task.started); default all')
    .option('--json', 'print each event as one JSON line, exactly as published')
    .option('--utc', 'print times in UTC instead of local time')
    .addHelpText('after', examples(['gaffer watch', 'gaffer watch resource task.started', 'gaffer watch --json | jq -c \'select(.kind == "worker.lost")\'']))
    .action(async (filters: string[], o: { json?: boolean; utc?: boolean }) => {
      let subjectList: string[];
      try {
        subjectList = eventSubjects(filters);
      } catch (err) {
        return fail(err);
      }
      let conn: Awaited<ReturnType<typeof connect>>;
      try {
        conn = await connect(merged(program, watchCmd));
      } catch (err) {
        return fail(err);
      }
      const ac = new AbortController();
      process.on('SIGINT', () => ac.abort());
      process.on('SIGTERM', () => ac.abort());
      process.stdout.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EPIPE') ac.abort(); // the reader went away (e.g. `| head`): that is a normal end
      });
      await watch(conn.client.nc, {
        json: o.json === true,
        subjects: subjectList,
        out: process.stdout,
        err: process.stderr,
        signal: ac.signal,
        utc: o.utc === true,
        onReady: (s) => process.stderr.write(`watching ${s.join(' ')} on ${conn.url} (Ctrl-C to stop)\n`),
      });
      await conn.client.close().catch(() => undefined);
      await flushStdout();
      process.exit(Exit.ok);
    });

  return program;
}

async function main(): Promise<void> {
  // A reader that goes away (`gaffer ls | head`) is not an error of ours.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(Exit.ok);
  });
  const program = buildProgram();
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

void main();
