// `gaffer dev`: a whole local cluster in one command. It starts its own
// nats-server and etcd (unless NATS_URL / ETCD_ENDPOINTS point elsewhere),
// 3 masters and 3 workers as child processes, prints how to talk to it, and
// takes everything down on Ctrl-C. With --secure both servers run with TLS
// and auth (secure.ts), and the banner says where the client's settings are.

import { createServer } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LocalCluster } from './cluster.js';
import { DEV_SUPERVISOR, Supervisor } from './supervise.js';
import { DEV_WATCHDOG_MS } from '#platform/watchdog.js';
import { subjects } from '#protocol/subjects.js';
import type { StatusResult } from '#protocol/messages.js';

export interface DevOptions {
  masters: number;
  workers: number;
  ttlSeconds: number;
  /** nats-servers to run, routed into one cluster (default 1). */
  natsNodes?: number;
  /** TLS and auth on NATS and etcd. */
  secure?: boolean;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export async function runDev(opts: DevOptions): Promise<void> {
  const t0 = performance.now();
  // The default NATS port lets `nats req …` work without --server.
  const natsPort = (await portFree(4222)) ? 4222 : undefined;
  // Every master serves the dashboard; m1 on 8080 when it is free.
  const httpPort = (await portFree(8080)) ? 8080 : undefined;
  if (opts.secure && (process.env.NATS_URL || process.env.ETCD_ENDPOINTS)) {
    throw new Error('--secure starts its own NATS and etcd: unset NATS_URL and ETCD_ENDPOINTS');
  }
  const cluster = await LocalCluster.start({
    ...opts,
    ...(natsPort ? { natsPort } : {}),
    http: true,
    ...(httpPort ? { httpPort } : {}),
    ...(process.env.NATS_URL && !opts.secure ? { natsUrl: process.env.NATS_URL } : {}),
    ...(process.env.ETCD_ENDPOINTS && !opts.secure ? { etcdEndpoints: process.env.ETCD_ENDPOINTS } : {}),
    inherit: true,
    env: { GAFFER_LOG_PRETTY: process.env.GAFFER_LOG_PRETTY ?? '1' },
    // A hung process leaves the masters' queue group within the watchdog's limit, and one that stops answering is restarted.
    watchdogMs: DEV_WATCHDOG_MS,
    healthz: true,
  });
  const children = [...cluster.masters.values(), ...cluster.workers.values()];
  const supervisor = new Supervisor(
    children.map((child) => ({ child, url: cluster.healthUrl(child.spec.name)! })),
    { ...DEV_SUPERVISOR, note: (line) => console.log(`gaffer dev: ${line}`) },
  );

  let stopping = false;
  const shutdown = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    supervisor.stop();
    console.log(`\n${sig}: stopping ${cluster.masters.size + cluster.workers.size} gaffer processes and the servers…`);
    await cluster.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  const status = await cluster.ready(opts.workers);
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  if (cluster.secure) return void console.log(secureBanner(cluster, status, secs));
  const server = cluster.natsUrl === 'nats://127.0.0.1:4222' ? '' : ` --server ${cluster.natsUrl}`;
  console.log(`
  gaffer dev cluster is up in ${secs} s: leader ${status.leader}, masters ${status.masters.join(' ')}, workers ${status.workers.map((w) => w.id).join(' ')}
    NATS  ${cluster.natsUrl}${natsNote(cluster)}
    etcd  ${cluster.etcdEndpoints}
    Web   ${cluster.httpUrl('m1')}
    logs  ${cluster.dir}

  Send a request:
    nats${server} req resource.add '{"name":"books"}'
    npx gaffer --nats ${cluster.natsUrl} add books
  Watch it work:
    nats${server} sub '${subjects.allWorkerAssign}'
    nats${server} sub '${subjects.allEvents}'

  Ctrl-C stops everything.
`);
}

/** natsNote says how the NATS servers are set up when there are several. */
function natsNote(cluster: LocalCluster): string {
  const n = cluster.natsCluster?.nodes.length ?? 1;
  return n > 1 ? `  (${n} routed nodes; each master and worker starts on one of them: mN and wN on node N mod ${n})` : '';
}

/**
 * secureBanner says how to reach the secure cluster without printing a
 * password: the client's settings go to a file only its owner can read.
 */
function secureBanner(cluster: LocalCluster, status: StatusResult, secs: string): string {
  const secure = cluster.secure!;
  const envFile = join(cluster.dir, 'client.env');
  secure.writeClientEnv(envFile, cluster.natsUrl);
  return `
  gaffer dev cluster (secure) is up in ${secs} s: leader ${status.leader}, masters ${status.masters.join(' ')}, workers ${status.workers.map((w) => w.id).join(' ')}
    NATS  ${cluster.natsUrl}  TLS, nats.conf users (random passwords), inbox prefix per user
    etcd  ${cluster.etcdEndpoints}  TLS, auth on: users master, worker, worker-w1…
    CA    ${secure.certs.ca}
    Web   ${cluster.httpUrl('m1')}
    logs  ${cluster.dir}

  Send a request as the client user (settings in ${envFile}, mode 0600):
    set -a; . ${envFile}; set +a
    npx gaffer add books
    nats --tlsca "$NATS_CA" --user "$NATS_USER" --password "$NATS_PASSWORD" --inbox-prefix _INBOX_client req resource.add '{"name":"books"}'
  Watch it work:
    npx gaffer watch

  Ctrl-C stops everything.
`;
}
