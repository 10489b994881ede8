// `gaffer dev`: a whole local cluster in one command. It starts its own
// nats-server and etcd (unless NATS_URL / ETCD_ENDPOINTS point elsewhere),
// 3 masters and 3 workers as child processes, prints how to talk to it, and
// takes everything down on Ctrl-C.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Child } from './child.js';
import { freePort, startEtcd, startNats, waitFor, type EtcdCluster, type NatsServer } from './servers.js';
import { GafferClient } from './client.js';
import { createServer } from 'node:net';

export interface DevOptions {
  masters: number;
  workers: number;
  ttlSeconds: number;
}

const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function preferred(port: number): Promise<number> {
  return (await portFree(port)) ? port : freePort();
}

export async function runDev(opts: DevOptions): Promise<void> {
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'gaffer-dev-'));
  let nats: NatsServer | undefined;
  let etcd: EtcdCluster | undefined;
  const natsUrl = process.env.NATS_URL ?? (nats = await startNats({ dir: join(dir, 'nats'), port: await preferred(4222) })).url;
  const etcdEndpoints = process.env.ETCD_ENDPOINTS ?? (etcd = await startEtcd({ dir: join(dir, 'etcd') })).endpoints.join(',');

  const env = { ...process.env, GAFFER_LOG_PRETTY: process.env.GAFFER_LOG_PRETTY ?? '1' };
  const common = ['--nats', natsUrl, '--etcd', etcdEndpoints, '--ttl', String(opts.ttlSeconds)];
  const procs: Child[] = [];
  const spawnRole = (role: string, id: string) =>
    procs.push(new Child({ name: id, cmd: process.execPath, args: [CLI, role, '--id', id, ...common], env, logFile: '', inherit: true }).start());
  for (let i = 1; i <= opts.masters; i++) spawnRole('master', `m${i}`);
  for (let i = 1; i <= opts.workers; i++) spawnRole('worker', `w${i}`);

  let stopping = false;
  const shutdown = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${sig}: stopping ${procs.length} gaffer processes and the servers…`);
    await Promise.all(procs.map((p) => p.stop()));
    await nats?.stop();
    await etcd?.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  const client = await GafferClient.connect(natsUrl, { timeoutMs: 2000 });
  const status = await waitFor(
    'the cluster to elect a leader and see its workers',
    async () => {
      const s = await client.status();
      return s.workers.length >= opts.workers ? s : undefined;
    },
    30000,
  );
  await client.close();
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  const server = natsUrl === 'nats://127.0.0.1:4222' ? '' : ` --server ${natsUrl}`;
  console.log(`
  gaffer dev cluster is up in ${secs} s: leader ${status.leader}, masters ${status.masters.join(' ')}, workers ${status.workers.map((w) => w.id).join(' ')}
    NATS  ${natsUrl}
    etcd  ${etcdEndpoints}
    data  ${dir}

  Send a request:
    nats${server} req resource.add '{"name":"books"}'
    npx gaffer --nats ${natsUrl} add books
  Watch it work:
    nats${server} sub 'worker.*.assign'
    nats${server} sub 'events.>'

  Ctrl-C stops everything.
`);
}
