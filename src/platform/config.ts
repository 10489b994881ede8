// Process configuration: flags override environment, environment overrides defaults.

import { v4 as uuidv4 } from 'uuid';
import { ID_RE, LABEL_RE } from '#protocol/messages.js';

export const DEFAULTS = {
  natsUrl: 'nats://127.0.0.1:4222',
  etcd: ['http://127.0.0.1:2379'],
  ttlSeconds: 3,
  capacity: 1000,
  /** How long a task may take to return after its signal aborts before it is stopped by force. */
  stopGraceMs: 2000,
  /** Heap limit of each task thread. */
  taskMemoryMb: 256,
  rebalanceMax: 10,
  rebalanceIntervalMs: 2000,
  /** How long a master parks a request while no leader is known (ParkedRequests). */
  parkMs: 3000,
  /** Deadline for one etcd call; past it the caller sees UNAVAILABLE. */
  etcdTimeoutMs: 2000,
  requestTimeoutMs: 5000,
} as const;

/** The etcd server refuses TTLs below its minimum (2 s by default). */
export const MIN_TTL_SECONDS = 2;
export const MAX_TTL_SECONDS = 60;

/** UsageError is bad configuration: the CLI prints it and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface CommonOptions {
  id?: string;
  nats?: string;
  /** --nats-no-randomize: a bare flag. */
  natsNoRandomize?: boolean;
  etcd?: string;
  ttl?: string;
  metricsPort?: string;
  /** The web dashboard's port (masters only). */
  httpPort?: string;
  /** TLS for NATS and etcd: the CA to trust, and a client certificate for servers that verify clients. */
  natsCa?: string;
  natsCert?: string;
  natsKey?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  /** etcd user (its password comes from ETCD_PASSWORD only: flags show in ps). */
  etcdUser?: string;
  /** End the process when its event loop stalls this long (watchdog.ts). */
  watchdogMs?: string;
}

/** TlsFiles names PEM files: a CA to trust (the system's when absent), and an optional client certificate and key. */
export interface TlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** EtcdAuth logs in to etcd with RBAC on. `password` is a key pino redacts (log.ts). */
export interface EtcdAuth {
  username: string;
  password: string;
}

export interface ProcessConfig {
  id: string;
  /** One NATS URL or several, comma-separated (parseNatsUrls checked them). */
  natsUrl: string;
  /** Try the NATS URLs in the order given instead of shuffled (--nats-no-randomize, NATS_NO_RANDOMIZE). */
  natsNoRandomize?: boolean;
  natsUser?: string;
  natsPass?: string;
  /** TLS to NATS (--nats-ca, --nats-cert, --nats-key; NATS_CA, NATS_CERT, NATS_KEY). */
  natsTls?: TlsFiles;
  etcd: string[];
  /** TLS to etcd (--etcd-ca, --etcd-cert, --etcd-key; ETCD_CA, ETCD_CERT, ETCD_KEY). */
  etcdTls?: TlsFiles;
  /** etcd credentials (--etcd-user or ETCD_USER, with ETCD_PASSWORD). */
  etcdAuth?: EtcdAuth;
  ttlSeconds: number;
  metricsPort?: number;
  /** Serve the web dashboard on this port (masters only; --http-port, GAFFER_HTTP_PORT). */
  httpPort?: number;
  /** A watchdog SIGKILLs the process when its event loop stalls this long (--watchdog-ms, GAFFER_WATCHDOG_MS; off when absent). */
  watchdogMs?: number;
}

export function parseId(raw: string | undefined, role: string): string {
  const id = raw ?? `${role}-${uuidv4().slice(0, 8)}`;
  if (!ID_RE.test(id)) throw new UsageError(`invalid --id ${JSON.stringify(id)}: must match ${ID_RE.source}`);
  return id;
}

export function parseTtl(raw: string | undefined): number {
  if (raw === undefined || raw === '') return DEFAULTS.ttlSeconds;
  const ttl = Number(raw);
  if (!Number.isInteger(ttl) || ttl < MIN_TTL_SECONDS || ttl > MAX_TTL_SECONDS) {
    throw new UsageError(`invalid --ttl ${JSON.stringify(raw)}: a whole number of seconds from ${MIN_TTL_SECONDS} to ${MAX_TTL_SECONDS}`);
  }
  return ttl;
}

export function parsePositiveInt(raw: string | undefined, flag: string, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) {
    throw new UsageError(`invalid ${flag} ${JSON.stringify(raw)}: a whole number from 1 to 1000000`);
  }
  return n;
}

/** JetStream keeps at most 5 copies of a stream. */
export const MAX_REPLICAS = 5;

/** parseReplicas reads --results-replicas: how many copies a clustered JetStream keeps of the results stream. */
export function parseReplicas(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_REPLICAS) {
    throw new UsageError(`invalid --results-replicas ${JSON.stringify(raw)}: a whole number from 1 to ${MAX_REPLICAS} (at most the NATS cluster's size)`);
  }
  return n;
}

/** Most nats-servers `gaffer dev --nats-nodes` starts: a cluster that still fits on one machine. */
export const MAX_NATS_NODES = 5;

/** parseNatsNodes reads `gaffer dev --nats-nodes`: 1 (one server) up to MAX_NATS_NODES routed ones. */
export function parseNatsNodes(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_NATS_NODES) throw new UsageError(`invalid --nats-nodes ${JSON.stringify(raw)}: a whole number from 1 to ${MAX_NATS_NODES}`);
  return n;
}

export function parseOnOff(raw: string | undefined, flag: string, fallback: boolean): boolean {
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'on' || raw === 'true') return true;
  if (raw === 'off' || raw === 'false') return false;
  throw new UsageError(`invalid ${flag} ${JSON.stringify(raw)}: on or off`);
}

/** parseLabels reads `key=value` flags; keys and values are words (LABEL_RE). */
export function parseLabels(raw: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of raw) {
    const i = r.indexOf('=');
    const k = i > 0 ? r.slice(0, i) : '';
    const v = i > 0 ? r.slice(i + 1) : '';
    if (!LABEL_RE.test(k) || !LABEL_RE.test(v)) throw new UsageError(`invalid --label ${JSON.stringify(r)}: key=value, each matching ${LABEL_RE.source}`);
    if (k in out) throw new UsageError(`--label ${k} given twice`);
    out[k] = v;
  }
  return out;
}

export function parsePort(raw: string, flag: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`invalid ${flag} ${JSON.stringify(raw)}: a port from 1 to 65535`);
  return n;
}

export function parseEndpoints(raw: string | undefined): string[] {
  if (raw === undefined || raw === '') return [...DEFAULTS.etcd];
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const e of list) {
    try {
      new URL(e.includes('://') ? e : `http://${e}`);
    } catch {
      throw new UsageError(`invalid etcd endpoint ${JSON.stringify(e)}`);
    }
  }
  if (list.length === 0) throw new UsageError('--etcd needs at least one endpoint');
  return list;
}

/** NATS_SCHEMES are what nats.js connects to from Node: plain and TLS (ws:// needs another transport). */
const NATS_SCHEMES = new Set(['nats:', 'tls:']);

/** redactUrl hides a password given inside a URL, for error messages. */
function redactUrl(raw: string): string {
  return raw.replace(/\/\/([^/@]*)@/, (_m, auth: string) => `//${auth.includes(':') ? `${auth.split(':')[0]}:***` : '***'}@`);
}

/**
 * parseNatsUrls checks a comma-separated list of NATS servers (--nats,
 * NATS_URL) and returns it in order: `host:port` or `nats://` / `tls://`
 * URLs, each with a port in range if one is given and no path. An empty
 * entry (a stray comma) is a mistake, not a server, so it is refused too.
 */
export function parseNatsUrls(raw: string | undefined): string[] {
  if (raw === undefined || raw.trim() === '') return [DEFAULTS.natsUrl];
  const list = raw.split(',').map((s) => s.trim());
  for (const entry of list) {
    if (entry === '') throw new UsageError(`invalid --nats ${JSON.stringify(redactUrl(raw))}: an empty entry in the comma-separated list`);
    const bad = (why: string) => new UsageError(`invalid NATS URL ${JSON.stringify(redactUrl(entry))} in --nats: ${why}`);
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(entry)?.[1];
    let u: URL;
    try {
      u = new URL(scheme ? entry : `nats://${entry}`);
    } catch {
      throw bad('not a URL or host:port');
    }
    if (!NATS_SCHEMES.has(u.protocol)) throw bad(`the scheme must be nats:// or tls://, not ${u.protocol}//`);
    if (u.hostname === '') throw bad('no host');
    if ((u.pathname !== '' && u.pathname !== '/') || u.search || u.hash) throw bad('a server URL has no path, query or fragment');
  }
  return list;
}

export function resolveProcess(role: string, opts: CommonOptions, env: NodeJS.ProcessEnv = process.env): ProcessConfig {
  const cfg: ProcessConfig = {
    id: parseId(opts.id ?? env.GAFFER_ID, role),
    natsUrl: parseNatsUrls(opts.nats ?? env.NATS_URL).join(','),
    etcd: parseEndpoints(opts.etcd ?? env.ETCD_ENDPOINTS),
    ttlSeconds: parseTtl(opts.ttl ?? env.GAFFER_TTL),
  };
  if (opts.natsNoRandomize === true || parseOnOff(env.NATS_NO_RANDOMIZE, 'NATS_NO_RANDOMIZE', false)) cfg.natsNoRandomize = true;
  if (env.NATS_USER) cfg.natsUser = env.NATS_USER;
  if (env.NATS_PASSWORD) cfg.natsPass = env.NATS_PASSWORD;
  const natsTls = tlsFiles('--nats', { ca: opts.natsCa ?? env.NATS_CA, cert: opts.natsCert ?? env.NATS_CERT, key: opts.natsKey ?? env.NATS_KEY });
  if (natsTls) cfg.natsTls = natsTls;
  const etcdTls = tlsFiles('--etcd', { ca: opts.etcdCa ?? env.ETCD_CA, cert: opts.etcdCert ?? env.ETCD_CERT, key: opts.etcdKey ?? env.ETCD_KEY });
  if (etcdTls) cfg.etcdTls = etcdTls;
  const etcdAuth = parseEtcdAuth(opts.etcdUser ?? env.ETCD_USER, env.ETCD_PASSWORD);
  if (etcdAuth) cfg.etcdAuth = etcdAuth;
  const metrics = opts.metricsPort ?? env.GAFFER_METRICS_PORT;
  if (metrics !== undefined && metrics !== '') cfg.metricsPort = parsePort(metrics, '--metrics-port');
  const http = opts.httpPort ?? env.GAFFER_HTTP_PORT;
  if (http !== undefined && http !== '') cfg.httpPort = parsePort(http, '--http-port');
  const watchdog = parseWatchdogMs(opts.watchdogMs ?? env.GAFFER_WATCHDOG_MS);
  if (watchdog !== undefined) cfg.watchdogMs = watchdog;
  return cfg;
}

/** The bounds of --watchdog-ms: below the least, an ordinary GC pause would count as a hang. */
export const WATCHDOG_MS = { min: 500, max: 600_000 } as const;

/** parseWatchdogMs reads --watchdog-ms: 0, off or absent turn the watchdog off. */
export function parseWatchdogMs(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '' || raw === '0' || raw === 'off') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < WATCHDOG_MS.min || n > WATCHDOG_MS.max) {
    throw new UsageError(`invalid --watchdog-ms ${JSON.stringify(raw)}: 0 (off) or a whole number of ms from ${WATCHDOG_MS.min} to ${WATCHDOG_MS.max}`);
  }
  return n;
}

/**
 * tlsFiles checks a CA, certificate and key given as paths (flags or env):
 * a certificate needs its key and a key its certificate. Undefined when none
 * is given. (Whether the files can be read is found out when connecting.)
 */
export function tlsFiles(flag: string, raw: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined }): TlsFiles | undefined {
  const out: TlsFiles = {};
  if (raw.ca) out.caFile = raw.ca;
  if (raw.cert) out.certFile = raw.cert;
  if (raw.key) out.keyFile = raw.key;
  if (out.certFile && !out.keyFile) throw new UsageError(`${flag}-cert needs ${flag}-key`);
  if (out.keyFile && !out.certFile) throw new UsageError(`${flag}-key needs ${flag}-cert`);
  return Object.keys(out).length > 0 ? out : undefined;
}

/** parseEtcdAuth pairs an etcd user with its password: one without the other is a usage error. */
export function parseEtcdAuth(user: string | undefined, password: string | undefined): EtcdAuth | undefined {
  if (!user && !password) return undefined;
  if (!user) throw new UsageError('ETCD_PASSWORD is set but no etcd user: give --etcd-user or ETCD_USER');
  if (!password) throw new UsageError(`etcd user ${JSON.stringify(user)} needs its password in ETCD_PASSWORD`);
  return { username: user, password };
}
