// Command-line options: argument parsers (commander reports their errors and
// the command exits 2), the connection options every command takes, and the
// resolved configuration of a master or worker.

import { Command, InvalidArgumentError } from 'commander';
import { DEFAULTS, parsePositiveInt, resolveProcess, type CommonOptions, type ProcessConfig } from '#platform/config.js';
import { validateId, validateName, validateSpec } from '#protocol/validate.js';
import type { Spec } from '#protocol/messages.js';

function invalid(fn: (raw: string) => unknown) {
  return (raw: string) => {
    try {
      return fn(raw);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

export const nameArg = invalid(validateName) as (raw: string) => string;
export const workerArg = invalid((raw) => validateId(raw, 'worker')) as (raw: string) => string;
export const msArg = invalid((raw) => parsePositiveInt(raw, '--timeout', DEFAULTS.requestTimeoutMs)) as (raw: string) => number;
/** everyArg: a refresh interval in ms (`gaffer crawl --every`). */
export const everyArg = invalid((raw) => parsePositiveInt(raw, '--every', 1000)) as (raw: string) => number;
export const specArg = invalid((raw) => {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new Error('--spec must be a JSON object, e.g. \'{"kind":"noop"}\'');
  }
  return validateSpec(v);
}) as (raw: string) => Spec;

export interface ConnOptions {
  nats?: string;
  natsUser?: string;
  natsPass?: string;
  natsCa?: string;
  natsCert?: string;
  natsKey?: string;
  timeout?: number;
  json?: boolean;
}

export function connOptions(cmd: Command): Command {
  return cmd
    .option('--nats <url>', 'NATS server URL(s), comma-separated (env NATS_URL)')
    .option('--nats-user <user>', 'NATS user (env NATS_USER)')
    .option('--nats-pass <password>', 'NATS password (env NATS_PASSWORD; prefer the env, flags show in ps)')
    .option('--nats-ca <file>', 'TLS to NATS: trust this CA certificate, PEM (env NATS_CA)')
    .option('--nats-cert <file>', 'TLS client certificate, PEM, for servers that verify clients (env NATS_CERT; with --nats-key)')
    .option('--nats-key <file>', 'its private key, PEM (env NATS_KEY)');
}

export function clientOptions(cmd: Command, opts: { json?: boolean } = {}): Command {
  connOptions(cmd).option('--timeout <ms>', `deadline for the whole command (default ${DEFAULTS.requestTimeoutMs})`, msArg);
  if (opts.json !== false) cmd.option('--json', 'print exactly the data as JSON, for scripts');
  return cmd;
}

/** merged gives a command's connection options, falling back to the program's. */
export function merged(program: Command, cmd: Command): ConnOptions {
  const g = program.opts<ConnOptions>();
  const o = cmd.opts<ConnOptions>();
  return {
    nats: o.nats ?? g.nats,
    natsUser: o.natsUser ?? g.natsUser,
    natsPass: o.natsPass ?? g.natsPass,
    natsCa: o.natsCa ?? g.natsCa,
    natsCert: o.natsCert ?? g.natsCert,
    natsKey: o.natsKey ?? g.natsKey,
    timeout: o.timeout ?? g.timeout,
    json: o.json ?? false,
  };
}

/** processConfig resolves a master's or worker's config; flags win over the environment. */
export function processConfig(role: string, o: CommonOptions & ConnOptions, program: Command): ProcessConfig {
  const g = program.opts<ConnOptions>();
  const nats = o.nats ?? g.nats;
  const tls = { natsCa: o.natsCa ?? g.natsCa, natsCert: o.natsCert ?? g.natsCert, natsKey: o.natsKey ?? g.natsKey };
  const cfg = resolveProcess(role, { ...o, ...(nats !== undefined ? { nats } : {}), ...tls });
  const user = o.natsUser ?? g.natsUser;
  const pass = o.natsPass ?? g.natsPass;
  if (user) cfg.natsUser = user;
  if (pass) cfg.natsPass = pass;
  return cfg;
}

export function processOptions(cmd: Command): Command {
  return connOptions(cmd.option('--id <id>', 'process id, [A-Za-z0-9_-]{1,64} (env GAFFER_ID; default: generated)'))
    .option('--etcd <urls>', 'etcd endpoints, comma-separated (env ETCD_ENDPOINTS)')
    .option('--ttl <seconds>', `lease TTL in seconds (env GAFFER_TTL; default ${DEFAULTS.ttlSeconds})`)
    .option('--metrics-port <port>', 'serve Prometheus metrics and /healthz on this port (env GAFFER_METRICS_PORT)')
    .option('--watchdog-ms <ms>', 'a watchdog process SIGKILLs this one when its event loop stalls this long, so NATS drops its subscriptions (env GAFFER_WATCHDOG_MS; default off; gaffer dev and docker-compose: 1500)')
    .option('--etcd-ca <file>', 'TLS to etcd: trust this CA certificate, PEM (env ETCD_CA)')
    .option('--etcd-cert <file>', 'TLS client certificate, PEM, for etcd with --client-cert-auth (env ETCD_CERT; with --etcd-key)')
    .option('--etcd-key <file>', 'its private key, PEM (env ETCD_KEY)')
    .option('--etcd-user <user>', 'etcd user when etcd has auth on (env ETCD_USER; the password only from env ETCD_PASSWORD)')
    .option('--nats-no-randomize', 'connect to the --nats servers in the order given, the first one first, instead of shuffled (env NATS_NO_RANDOMIZE=on)');
}
