// Worker pool (bench only): one process running many Worker actors, each with
// its own NATS connection, etcd client and lease, exactly as `gaffer worker`
// runs one. The scale benchmark uses a few of these instead of 100 processes.
//
//   node worker-pool.js --prefix p1 --count 25 --capacity 1500 --nats URL --etcd URLS --ttl 2
//
// SIGTERM stops every worker (each deregisters) and exits.

import { WorkerProcess } from '#actors/worker/process.js';
import { rootLogger } from '#platform/log.js';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i > 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`worker-pool: --${name} is required`);
  return v;
}

async function main(): Promise<void> {
  const prefix = arg('prefix');
  const count = Number(arg('count'));
  const capacity = Number(arg('capacity', '1000'));
  rootLogger({ role: 'worker-pool', id: prefix });
  const base = { natsUrl: arg('nats'), etcd: arg('etcd').split(','), ttlSeconds: Number(arg('ttl', '2')), capacity };
  const workers: WorkerProcess[] = [];
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  // A few at a time: each start registers a lease and reads a snapshot.
  const ids = Array.from({ length: count }, (_, i) => `${prefix}-w${i + 1}`);
  for (let i = 0; i < ids.length && !stopping; i += 5) {
    const started = await Promise.all(ids.slice(i, i + 5).map((id) => WorkerProcess.start({ ...base, id })));
    workers.push(...started);
  }
  process.stdout.write(`worker-pool ${prefix}: ${workers.length} workers started\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
