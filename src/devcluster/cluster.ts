// LocalCluster: real nats-server and etcd plus gaffer master and worker
// processes on this machine. `gaffer dev`, the integration tests, the
// benchmark and the chaos run all stand on it.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Child } from './child.js';
import { GafferClient } from '#client/client.js';
import { freePort, startEtcd, startNatsCluster, waitFor, type EtcdCluster, type NatsCluster, type NatsServer } from './servers.js';
import { natsUrlsFor } from './nats-order.js';
import { randomBytes } from 'node:crypto';
import { SecureSetup } from './secure.js';
import { setupEtcdAuth } from './etcd-auth.js';
import { readEtcdTls } from '#platform/etcd/tls.js';
import type { StatusResult } from '#protocol/messages.js';
import { ClientSubject } from '#protocol/subjects.js';

/** The gaffer command, as built (the composition root is bin/gaffer.ts). */
export const CLI_PATH = fileURLToPath(new URL('../../bin/gaffer.js', import.meta.url));

export interface ClusterOptions {
  masters?: number;
  workers?: number;
  ttlSeconds?: number;
  /** etcd's automatic compaction: periodic (ETCD_STORAGE_FLAGS, the default) or off (the caller compacts). */
  etcdCompaction?: 'periodic' | 'off';
  etcdMembers?: number;
  /**
   * nats-servers to start, routed to each other (default 1). With several,
   * each master and worker connects first to the node its id picks
   * (nats-order.ts) and knows all of them; with 3 or more, masters keep 3
   * copies of the results stream.
   */
  natsNodes?: number;
  /** Use these servers instead of starting our own (NATS: one URL or a comma-separated list). */
  natsUrl?: string;
  etcdEndpoints?: string;
  /** Preferred NATS port (falls back to a free one when taken). */
  natsPort?: number;
  /** Print the children's output here instead of into log files. */
  inherit?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Worker capacity. */
  capacity?: number;
  /** Masters serve the web dashboard (--http-port), each on its own free port: see httpUrl. */
  http?: boolean;
  /** With http: m1's preferred dashboard port (the caller checked it is free). */
  httpPort?: number;
  /**
   * TLS and auth on both servers (secure.ts): NATS with TLS and nats.conf's
   * users, etcd with TLS and RBAC; every process gets its own credentials.
   * Starts its own servers (natsUrl and etcdEndpoints are refused).
   */
  secure?: boolean;
  /** With secure: etcd's --auth-token-ttl in seconds (default 300). */
  etcdAuthTokenTtl?: number;
  /** Start every master and worker with --watchdog-ms (watchdog.ts). Off by default: tests and chaos pause processes on purpose. */
  watchdogMs?: number;
  /** Every master and worker serves /metrics and /healthz on a port of its own: see healthUrl. */
  healthz?: boolean;
}

export class LocalCluster {
  readonly masters = new Map<string, Child>();
  readonly workers = new Map<string, Child>();
  private clientP: Promise<GafferClient> | undefined;
  /** Dashboard ports by master id (with opts.http); a restarted master keeps its port. */
  private readonly httpPorts = new Map<string, number>();
  /** Metrics and /healthz ports by process id (with opts.healthz); a restarted process keeps its port. */
  private readonly metricsPorts = new Map<string, number>();

  private constructor(
    readonly dir: string,
    readonly opts: ClusterOptions,
    /** Every NATS server's URL, comma-separated: what a client is given. */
    readonly natsUrl: string,
    readonly etcdEndpoints: string,
    /** The nats-servers we started (none when given natsUrl). */
    readonly natsCluster: NatsCluster | undefined,
    readonly etcd: EtcdCluster | undefined,
    /** With opts.secure: the certificates and every process's credentials. */
    readonly secure: SecureSetup | undefined,
  ) {}

  /** nats is the first nats-server we started: with one node, the only one. */
  get nats(): NatsServer | undefined {
    return this.natsCluster?.nodes[0];
  }

  /** start brings up servers (unless given) and the requested masters and workers, without waiting for them. */
  static async start(opts: ClusterOptions = {}): Promise<LocalCluster> {
    if (opts.secure && (opts.natsUrl || opts.etcdEndpoints)) throw new Error('a secure cluster starts its own NATS and etcd: unset NATS_URL and ETCD_ENDPOINTS');
    const dir = mkdtempSync(join(tmpdir(), 'gaffer-'));
    // etcd users of their own for w1..wN (at least w1..w3, like nats.conf's worker-wN): the ids startWorker is usually given.
    const workerIds = Array.from({ length: Math.max(3, opts.workers ?? 0) }, (_, i) => `w${i + 1}`);
    const secure = opts.secure ? SecureSetup.create(dir, workerIds) : undefined;
    const nats = opts.natsUrl
      ? undefined
      : await startNatsCluster({
          dir: join(dir, 'nats'),
          nodes: opts.natsNodes ?? 1,
          ...(opts.natsPort ? { port: opts.natsPort } : {}),
          ...(secure
            ? {
                extraConfig: secure.natsExtraConfig(),
                tls: secure.certs.nats,
                // nats.conf includes its password overrides from next to each node's config.
                prepareDir: (d: string) => secure.writeNatsPasswords(d),
                routeAuth: { user: 'route', password: randomBytes(18).toString('base64url') },
              }
            : {}),
        });
    const etcd = opts.etcdEndpoints
      ? undefined
      : await startEtcd({
          dir: join(dir, 'etcd'),
          size: opts.etcdMembers ?? 1,
          ...(opts.etcdCompaction ? { compaction: opts.etcdCompaction } : {}),
          ...(secure ? { tls: secure.certs.etcd, ...(opts.etcdAuthTokenTtl ? { authTokenTtl: opts.etcdAuthTokenTtl } : {}) } : {}),
        });
    // With TLS, host names: Node warns when TLS is asked to verify an IP address by name (SNI).
    const local = (url: string): string => (secure ? url.replaceAll('127.0.0.1', 'localhost') : url);
    if (secure) {
      await setupEtcdAuth(etcd!.endpoints.map(local), {
        tls: readEtcdTls({ caFile: secure.certs.ca }),
        rootPassword: secure.etcdRootPassword,
        accounts: secure.etcdAccounts,
      }).catch(async (err) => {
        await Promise.all([nats?.stop(), etcd?.stop()]);
        throw err;
      });
    }
    const c = new LocalCluster(
      dir,
      opts,
      opts.natsUrl ?? nats!.urls.map(local).join(','),
      opts.etcdEndpoints ?? etcd!.endpoints.map(local).join(','),
      nats,
      etcd,
      secure,
    );
    if (opts.http) {
      for (let i = 1; i <= (opts.masters ?? 0); i++) {
        c.httpPorts.set(`m${i}`, i === 1 && opts.httpPort ? opts.httpPort : await freePort());
      }
    }
    if (opts.healthz) {
      for (let i = 1; i <= (opts.masters ?? 0); i++) c.metricsPorts.set(`m${i}`, await freePort());
      for (let i = 1; i <= (opts.workers ?? 0); i++) c.metricsPorts.set(`w${i}`, await freePort());
    }
    for (let i = 1; i <= (opts.masters ?? 0); i++) c.startMaster(`m${i}`);
    for (let i = 1; i <= (opts.workers ?? 0); i++) c.startWorker(`w${i}`);
    return c;
  }

  /** natsArgs: every NATS URL, this process's own node first and tried first (nats-order.ts). */
  private natsArgs(id: string): string[] {
    const urls = natsUrlsFor(id, this.natsUrl.split(','));
    return ['--nats', urls.join(','), ...(urls.length > 1 ? ['--nats-no-randomize'] : [])];
  }

  private spawn(role: 'master' | 'worker', id: string, extra: string[]): Child {
    const args = [
      CLI_PATH, role, '--id', id,
      ...this.natsArgs(id), '--etcd', this.etcdEndpoints,
      '--ttl', String(this.opts.ttlSeconds ?? 2),
      ...(this.opts.watchdogMs ? ['--watchdog-ms', String(this.opts.watchdogMs)] : []),
      ...(this.metricsPorts.has(id) ? ['--metrics-port', String(this.metricsPorts.get(id))] : []),
      ...extra,
    ];
    return new Child({
      name: id,
      cmd: process.execPath,
      args,
      // Only opts.watchdogMs turns the watchdog on, never the caller's environment: chaos and the tests pause processes on purpose.
      env: { ...process.env, GAFFER_WATCHDOG_MS: undefined, GAFFER_LOG_LEVEL: process.env.GAFFER_LOG_LEVEL ?? 'info', ...this.opts.env, ...this.secure?.env(role, id) },
      logFile: join(this.dir, `${id}.log`),
      inherit: this.opts.inherit ?? false,
    }).start();
  }

  startMaster(id: string, extra: string[] = []): Child {
    const port = this.httpPorts.get(id);
    // Three copies of task results once there are three NATS nodes: losing one loses none, and the stream keeps a quorum.
    const replicas = (this.natsCluster?.nodes.length ?? 1) >= 3 ? ['--results-replicas', '3'] : [];
    const c = this.spawn('master', id, [...replicas, ...(port ? ['--http-port', String(port)] : []), ...extra]);
    this.masters.set(id, c);
    return c;
  }

  startWorker(id: string, extra: string[] = []): Child {
    const cap = this.opts.capacity ? ['--capacity', String(this.opts.capacity)] : [];
    const c = this.spawn('worker', id, [...cap, ...extra]);
    this.workers.set(id, c);
    return c;
  }

  /** httpUrl is where a master started with opts.http serves the dashboard. */
  httpUrl(masterId: string): string {
    const port = this.httpPorts.get(masterId);
    if (port === undefined) throw new Error(`master ${masterId} serves no dashboard (start the cluster with http: true)`);
    return `http://127.0.0.1:${port}/`;
  }

  /** healthUrl is where a process started with opts.healthz answers /healthz (undefined without). */
  healthUrl(id: string): string | undefined {
    const port = this.metricsPorts.get(id);
    return port === undefined ? undefined : `http://127.0.0.1:${port}/healthz`;
  }

  /** client is one shared typed client for this cluster. */
  client(): Promise<GafferClient> {
    return (this.clientP ??= GafferClient.connect(this.natsUrl, { timeoutMs: 5000, ...this.secure?.client() }));
  }

  /** ready waits until a leader answers and sees `workers` live workers and every running master. */
  async ready(workers = this.workers.size, timeoutMs = 30000): Promise<StatusResult> {
    const c = await this.client();
    const masters = [...this.masters.values()].filter((m) => m.running).length;
    return waitFor(
      `a leader that sees ${workers} workers and ${masters} masters`,
      async () => {
        const s = await c.call<StatusResult>(ClientSubject.status, {}, 1000);
        return s.workers.length === workers && s.masters.length >= masters ? s : undefined;
      },
      timeoutMs,
    );
  }

  /** stop takes everything down; keepDir leaves the logs for a failed test to show. */
  async stop(keepDir = false): Promise<void> {
    if (this.clientP) await (await this.clientP.catch(() => undefined))?.close().catch(() => undefined);
    await Promise.all([...this.masters.values(), ...this.workers.values()].map((c) => c.stop()));
    await this.natsCluster?.stop();
    await this.etcd?.stop();
    if (!keepDir) rmSync(this.dir, { recursive: true, force: true });
  }
}
