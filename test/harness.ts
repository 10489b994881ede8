// Test harness: a LocalCluster per test file (real nats-server, real etcd,
// real gaffer processes), always torn down, plus small waiting helpers.
// Set GAFFER_KEEP_LOGS=1 to keep each cluster's logs for a post-mortem.

import { after } from 'node:test';
import { spawn } from 'node:child_process';
import { connect, type NatsConnection, type Subscription } from 'nats';
import { LocalCluster, type ClusterOptions } from '#devcluster/cluster.js';
import { waitFor } from '#devcluster/servers.js';
import { json } from '#protocol/codec.js';
import type { Resource, WorkerStatusResult } from '#protocol/messages.js';

export { waitFor };

/** cluster starts a cluster that is stopped when the test file ends. */
export async function cluster(opts: ClusterOptions): Promise<LocalCluster> {
  const c = await LocalCluster.start(opts);
  after(() => c.stop(process.env.GAFFER_KEEP_LOGS === '1'));
  return c;
}

/** running asks every live worker what it runs: name -> worker ids running it. */
export async function runningEverywhere(c: LocalCluster): Promise<Map<string, string[]>> {
  const client = await c.client();
  const out = new Map<string, string[]>();
  for (const [id, child] of c.workers) {
    if (!child.running) continue;
    let st: WorkerStatusResult;
    try {
      st = await client.call<WorkerStatusResult>(`worker.${id}.status`, {}, 1000);
    } catch {
      continue; // paused or starting: it runs nothing we can see
    }
    for (const name of st.running) out.set(name, [...(out.get(name) ?? []), id]);
  }
  return out;
}

/** converged waits until every resource runs on exactly its assigned live worker and nothing else runs. */
export async function converged(c: LocalCluster, timeoutMs = 20000): Promise<Resource[]> {
  const client = await c.client();
  return waitFor(
    'every resource to run on exactly its assigned worker',
    async () => {
      const list = await client.list();
      const running = await runningEverywhere(c);
      for (const r of list) {
        const where = running.get(r.name) ?? [];
        if (r.worker === null || where.length !== 1 || where[0] !== r.worker) return undefined;
      }
      if (running.size !== list.length) return undefined;
      return list;
    },
    timeoutMs,
  );
}

/** Recorder subscribes to a subject and keeps every JSON message, for assertions on events. */
export class Recorder<T = Record<string, unknown>> {
  readonly items: Array<{ subject: string; data: T; at: number }> = [];
  private constructor(private readonly nc: NatsConnection, private readonly sub: Subscription) {}

  static async start<T>(url: string, subject: string): Promise<Recorder<T>> {
    const nc = await connect({ servers: url, maxReconnectAttempts: -1 });
    const sub = nc.subscribe(subject);
    const r = new Recorder<T>(nc, sub);
    void (async () => {
      for await (const m of sub) r.items.push({ subject: m.subject, data: json.decode(m.data) as T, at: Date.now() });
    })();
    await nc.flush();
    after(() => r.close());
    return r;
  }

  async close(): Promise<void> {
    if (!this.nc.isClosed()) await this.nc.close();
  }
}

export async function rawConnect(url: string): Promise<NatsConnection> {
  const nc = await connect({ servers: url });
  after(() => nc.close());
  return nc;
}

/**
 * runScript runs a built script (the bench, the chaos run) as a child with a
 * deadline: SIGTERM at the deadline (the scripts stop their own children on
 * it), SIGKILL ten seconds later if that did not end it.
 */
export function runScript(
  path: string,
  env: NodeJS.ProcessEnv,
  deadlineMs: number,
): Promise<{ code: number | null; signal: string | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const term = setTimeout(() => child.kill('SIGTERM'), deadlineMs);
    const kill = setTimeout(() => child.kill('SIGKILL'), deadlineMs + 10_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(term);
      clearTimeout(kill);
      resolve({ code, signal, output });
    });
  });
}
