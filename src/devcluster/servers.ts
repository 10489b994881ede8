// Real nats-server and etcd processes on loopback, with their own ports and
// data directories: what `gaffer dev`, the tests, the benchmark and the chaos
// run stand on.

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Child } from './child.js';
import { etcdHealthy, natsHealthy, tcpOpen } from './probe.js';
import { waitFor } from '#platform/retry.js';

export { waitFor };

export class MissingBinaryError extends Error {
  override name = 'MissingBinaryError';
}

/** which finds a binary on PATH (or in sbin, where Debian puts nats-server). */
export function which(bin: string): string {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin']) {
    if (!dir) continue;
    try {
      execFileSync('test', ['-x', join(dir, bin)]);
      return join(dir, bin);
    } catch {
      /* not here */
    }
  }
  throw new MissingBinaryError(`${bin} is not installed; on Debian: apt-get install -y nats-server etcd-server`);
}

/** freePort asks the kernel for a free loopback port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}



export interface NatsServer {
  /** Its server_name in a cluster (n1, n2, …); `nats` alone. */
  name: string;
  url: string;
  port: number;
  /** The monitoring endpoint (/healthz, /connz), in a cluster. */
  monitorUrl?: string;
  child: Child;
  /** Stops and starts it again on the same port. */
  restart(): Promise<void>;
  /** Starts it again (after a stop or a kill) on the same ports and data directory, and waits until it listens. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** NatsCluster is one nats-server or several routed to each other. */
export interface NatsCluster {
  nodes: NatsServer[];
  /** Every node's client URL, in node order. */
  urls: string[];
  /** Stops every node, then starts them all again on the same ports. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** NatsRoutes makes a nats-server one node of a routed cluster. */
export interface NatsRoutes {
  /** The cluster's name, the same on every node. */
  cluster: string;
  /** This node's unique server_name (clustered JetStream needs one). */
  serverName: string;
  /** Where this node listens for routes. */
  port: number;
  /** The other nodes' route ports. */
  peers: number[];
  /** Routes log in with this (and, with the node's tls, are TLS both ways, verified against the CA). */
  auth?: { user: string; password: string };
  /** Serve /healthz and /connz here. */
  monitorPort: number;
}

export interface NatsOptions {
  dir: string;
  port?: number;
  /**
   * Extra config text (accounts, authorization). Accounts defined here use
   * JetStream only with `jetstream: enabled` in their own definition.
   */
  extraConfig?: string;
  inherit?: boolean;
  /** JetStream (task results), stored under `<dir>/jetstream`; default on. */
  jetstream?: boolean;
  /** TLS for clients: the server's certificate and key, and the CA (PEM files). */
  tls?: ServerTls;
  /** One node of a routed cluster (startNatsCluster sets it). */
  routes?: NatsRoutes;
  /** Its name in a cluster; `nats` alone. */
  name?: string;
}

/** ServerTls names a server's PEM files: its certificate, its key and the CA it trusts. */
export interface ServerTls {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/**
 * natsConfig is the config file startNats writes. The jetstream block comes
 * last: nats-server takes the last of two top-level blocks (checked against
 * 2.9.10), so a store_dir in extraConfig (nats.conf has one) never puts test
 * data outside `dir`.
 */
/**
 * PING_SETTINGS make the server drop an idle client that stops answering
 * within about 6 to 8 s instead of 2 minutes × 2 pings. (A client that keeps
 * receiving messages is never pinged by nats-server 2.9; masters bound what a
 * hung one holds with budgeted queue subscriptions instead.) Tighter than
 * this, a process whose event loop stalls for a second or two on a loaded
 * machine is cut off while it is alive (seen at 1 s × 1 under a load average
 * of 14). Kept the same in nats.conf and compose.
 */
export const PING_SETTINGS = 'ping_interval: "2s"\nping_max: 3\n';

export function natsConfig(opts: NatsOptions, port: number): string {
  const js = opts.jetstream === false ? '' : `jetstream {\n  store_dir: ${JSON.stringify(join(opts.dir, 'jetstream'))}\n}\n`;
  const tls = opts.tls
    ? `tls {\n  cert_file: ${JSON.stringify(opts.tls.certFile)}\n  key_file: ${JSON.stringify(opts.tls.keyFile)}\n  ca_file: ${JSON.stringify(opts.tls.caFile)}\n  timeout: 2\n}\n`
    : '';
  return `listen: 127.0.0.1:${port}\nmax_payload: 1MB\n${PING_SETTINGS}${opts.extraConfig ?? ''}\n${tls}${opts.routes ? routesConfig(opts.routes, opts.tls) : ''}${js}`;
}

/**
 * routesConfig is what makes a node part of a cluster: its server_name, its
 * route listener and the other nodes' routes, and a monitoring port. Like
 * deploy/nats-cluster.conf, with a route login when asked (the secure dev
 * cluster) and, with TLS, routes verified against the CA both ways. Without a
 * login anything on this machine could join as a route: the plain dev
 * cluster accepts that, as it accepts any client.
 */
export function routesConfig(r: NatsRoutes, tls?: ServerTls): string {
  const cred = r.auth ? `${encodeURIComponent(r.auth.user)}:${encodeURIComponent(r.auth.password)}@` : '';
  // With TLS the peer's certificate is checked against 127.0.0.1: make-certs.sh lists that address.
  const routes = r.peers.map((p) => JSON.stringify(`nats-route://${cred}127.0.0.1:${p}`)).join(', ');
  const auth = r.auth
    ? `  authorization {\n    user: ${JSON.stringify(r.auth.user)}\n    password: ${JSON.stringify(r.auth.password)}\n    timeout: 2\n  }\n`
    : '';
  const routeTls = tls
    ? `  tls {\n    cert_file: ${JSON.stringify(tls.certFile)}\n    key_file: ${JSON.stringify(tls.keyFile)}\n    ca_file: ${JSON.stringify(tls.caFile)}\n    verify: true\n    timeout: 2\n  }\n`
    : '';
  return (
    `server_name: ${JSON.stringify(r.serverName)}\n` +
    `http: 127.0.0.1:${r.monitorPort}\n` +
    `cluster {\n  name: ${JSON.stringify(r.cluster)}\n  listen: 127.0.0.1:${r.port}\n${auth}${routeTls}  routes: [${routes}]\n}\n`
  );
}

export async function startNats(opts: NatsOptions): Promise<NatsServer> {
  const bin = which('nats-server');
  mkdirSync(opts.dir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const conf = join(opts.dir, 'nats.conf');
  writeFileSync(conf, natsConfig(opts, port));
  const child = new Child({
    name: 'nats-server',
    cmd: bin,
    args: ['-c', conf],
    logFile: join(opts.dir, 'nats.log'),
    inherit: opts.inherit ?? false,
  }).start();
  const ready = () => waitFor(`nats-server on ${port}`, async () => (await tcpOpen(port)) || (!child.running && Promise.reject(new Error('nats-server exited'))));
  await ready();
  return {
    name: opts.name ?? 'nats',
    url: `nats://127.0.0.1:${port}`,
    port,
    ...(opts.routes ? { monitorUrl: `http://127.0.0.1:${opts.routes.monitorPort}` } : {}),
    child,
    restart: async () => {
      await child.stop();
      child.start();
      await ready();
    },
    start: async () => {
      if (!child.running) child.start();
      await ready();
    },
    stop: () => child.stop(),
  };
}

export interface NatsClusterOptions extends Omit<NatsOptions, 'routes' | 'name' | 'port'> {
  /** How many nats-servers; 1 is a plain server, exactly as startNats starts it. */
  nodes: number;
  /** Preferred client port of the first node. */
  port?: number;
  /** Route login (the secure dev cluster). */
  routeAuth?: { user: string; password: string };
  /** Called with each node's directory before it starts (to put files its config includes there). */
  prepareDir?: (dir: string) => void;
}

/**
 * startNatsCluster starts `nodes` nats-servers routed to each other on
 * loopback, each with its own client, route and monitoring port and its own
 * JetStream store under `<dir>/n<i>`, and waits until JetStream has formed
 * (every node's /healthz is ok: a meta leader is known and its streams are
 * current). One node is startNats in `dir` itself, as before.
 */
export async function startNatsCluster(opts: NatsClusterOptions): Promise<NatsCluster> {
  const { nodes: n, routeAuth, prepareDir, ...base } = opts;
  if (!Number.isInteger(n) || n < 1) throw new Error(`a NATS cluster needs at least one node, not ${n}`);
  if (n === 1) {
    prepareDir?.(opts.dir);
    const one = await startNats(base);
    return clusterOf([one]);
  }
  const clientPorts = await Promise.all(Array.from({ length: n }, (_, i) => (i === 0 && opts.port ? opts.port : freePort())));
  const routePorts = await Promise.all(Array.from({ length: n }, () => freePort()));
  const monitorPorts = await Promise.all(Array.from({ length: n }, () => freePort()));
  const started: NatsServer[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const dir = join(opts.dir, `n${i + 1}`);
      mkdirSync(dir, { recursive: true });
      prepareDir?.(dir);
      started.push(
        await startNats({
          ...base,
          dir,
          name: `n${i + 1}`,
          port: clientPorts[i]!,
          routes: {
            cluster: 'gaffer-local',
            serverName: `n${i + 1}`,
            port: routePorts[i]!,
            peers: routePorts.filter((_, j) => j !== i),
            monitorPort: monitorPorts[i]!,
            ...(routeAuth ? { auth: routeAuth } : {}),
          },
        }),
      );
    }
    if (base.jetstream !== false) await Promise.all(started.map((s) => waitFor(`${s.name} JetStream ready`, () => natsHealthy(s.monitorUrl!), 30000)));
  } catch (err) {
    await Promise.all(started.map((s) => s.stop()));
    throw err;
  }
  return clusterOf(started);
}

function clusterOf(nodes: NatsServer[]): NatsCluster {
  return {
    nodes,
    urls: nodes.map((s) => s.url),
    restart: async () => {
      await Promise.all(nodes.map((s) => s.child.stop()));
      await Promise.all(nodes.map((s) => s.start()));
    },
    stop: async () => {
      await Promise.all(nodes.map((s) => s.stop()));
    },
  };
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  /** Where /health answers over plain HTTP (the client URL itself with TLS off). */
  healthUrl: string;
  child: Child;
  restart(): Promise<void>;
}

export interface EtcdCluster {
  endpoints: string[];
  members: EtcdMember[];
  stop(): Promise<void>;
}


export interface EtcdOptions {
  dir: string;
  size?: number;
  /** off: no automatic compaction (a bench that compacts itself). */
  compaction?: 'periodic' | 'off';
  inherit?: boolean;
  /**
   * TLS for clients and peers (https, peers verify each other); /health then
   * answers on a plain-HTTP metrics URL of its own (EtcdMember.healthUrl).
   */
  tls?: ServerTls;
  /** etcd's --auth-token-ttl in seconds (its default is 300): how long an idle login token lives. */
  authTokenTtl?: number;
  /** How often etcd tells a quiet watch how far it is current (default: ETCD_STORAGE_FLAGS' 1 minute). */
  progressNotifyMs?: number;
}

/**
 * What a gaffer etcd needs beyond its defaults: a quota that holds a million
 * resources (about 1 KiB each live, with their history until compaction; the
 * default 2 GiB stops a 1M cluster with NOSPACE), compaction that keeps
 * five minutes of history (a standby's or worker's watch that falls further
 * behind re-reads; see docs/scale.md), and a progress notice to every quiet
 * watch each minute, well inside those five: a watch resumes from the
 * revision it was last told of, and a quiet one told nothing for longer than
 * the retention would find it compacted and make its owner re-read
 * everything. The same flags are in docker-compose.yml and docs/deploy.md.
 */
export const ETCD_STORAGE_FLAGS: readonly string[] = [
  '--quota-backend-bytes', String(8 * 1024 ** 3),
  '--auto-compaction-mode', 'periodic',
  '--auto-compaction-retention', '5m',
  '--experimental-watch-progress-notify-interval', '1m',
];

/** startEtcd starts a cluster of `size` members on loopback and waits until it is healthy. */
export async function startEtcd(opts: EtcdOptions): Promise<EtcdCluster> {
  const bin = which('etcd');
  const size = opts.size ?? 1;
  const tls = opts.tls;
  const ports = await Promise.all(Array.from({ length: size * (tls ? 3 : 2) }, () => freePort()));
  const names = Array.from({ length: size }, (_, i) => `etcd${i + 1}`);
  const scheme = tls ? 'https' : 'http';
  const peer = (i: number) => `${scheme}://127.0.0.1:${ports[size + i]}`;
  const client = (i: number) => `${scheme}://127.0.0.1:${ports[i]}`;
  const health = (i: number) => (tls ? `http://127.0.0.1:${ports[2 * size + i]}` : client(i));
  const security = (i: number): string[] =>
    tls
      ? [
          '--cert-file', tls.certFile, '--key-file', tls.keyFile,
          '--peer-cert-file', tls.certFile, '--peer-key-file', tls.keyFile,
          '--peer-trusted-ca-file', tls.caFile, '--peer-client-cert-auth',
          '--listen-metrics-urls', health(i),
        ]
      : [];
  const initial = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  const members = names.map((name, i): EtcdMember => {
    const dataDir = join(opts.dir, name);
    mkdirSync(dataDir, { recursive: true });
    const child = new Child({
      name,
      cmd: bin,
      args: [
        '--name', name,
        '--data-dir', dataDir,
        '--listen-client-urls', client(i),
        '--advertise-client-urls', client(i),
        '--listen-peer-urls', peer(i),
        '--initial-advertise-peer-urls', peer(i),
        '--initial-cluster', initial,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', `gaffer-${process.pid}-${ports[0]}`,
        '--logger', 'zap',
        '--log-level', 'error',
        // Small loopback clusters: elect fast so member restarts are cheap.
        '--heartbeat-interval', '50',
        '--election-timeout', '500',
        ...ETCD_STORAGE_FLAGS,
        // The last of a repeated flag wins.
        ...(opts.compaction === 'off' ? ['--auto-compaction-retention', '0'] : []),
        ...security(i),
        ...(opts.authTokenTtl ? ['--auth-token-ttl', String(opts.authTokenTtl)] : []),
        ...(opts.progressNotifyMs ? ['--experimental-watch-progress-notify-interval', `${opts.progressNotifyMs}ms`] : []),
      ],
      logFile: join(opts.dir, `${name}.log`),
      inherit: opts.inherit ?? false,
    });
    return {
      name,
      clientUrl: client(i),
      healthUrl: health(i),
      child,
      restart: async () => {
        await child.stop();
        child.start();
        await waitFor(`${name} healthy`, () => etcdHealthy(health(i)));
      },
    };
  });
  for (const m of members) m.child.start();
  await Promise.all(members.map((m) => waitFor(`${m.name} healthy`, () => etcdHealthy(m.healthUrl), 30000)));
  return {
    endpoints: members.map((m) => m.clientUrl),
    members,
    stop: async () => {
      await Promise.all(members.map((m) => m.child.stop()));
    },
  };
}
