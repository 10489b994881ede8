// Failover: how long the cluster stops serving, or stops running work, when a
// process dies. Lease TTL is the config's (2 s). Each scenario repeats and
// reports every run plus the median.
//   leader SIGKILL / SIGTERM -> first successful add (see probe.ts)
//   worker SIGKILL holding N resources -> all N running on the survivors,
//     seen on events.task.started and then confirmed by polling
//     worker.<id>.status of the survivors

import { performance } from 'node:perf_hooks';
import type { NatsConnection, Subscription } from 'nats';
import { LocalCluster } from '#devcluster/cluster.js';
import { waitFor } from '#devcluster/servers.js';
import { ClientSubject, subjects } from '#protocol/subjects.js';
import { json } from '#protocol/codec.js';
import type { StatusResult, WorkerStatusResult } from '#protocol/messages.js';
import type { BenchConfig } from './config.js';
import { median } from '#lib/stats.js';
import { runLoad, sleep } from './load.js';
import { served, type Served } from './probe.js';
import { watchTermEnd } from './terms.js';
import { benchConnect, request, runId } from './wire.js';

export interface LeaderRun extends Served {
  signal: string;
  killed: string;
  newLeader: string;
  /** ms from the break to the new leader's events.leader.elected (published once it has loaded state). */
  electedMs: number;
}
export interface WorkerRun {
  resources: number;
  /** ms from the kill to events.worker.lost from the leader (lease expiry seen). */
  lostMs: number;
  /** ms from the kill until every resource had a task.started on a survivor. */
  allRunningMs: number;
  /** ms from the kill until polling the survivors' status showed every resource (an upper bound). */
  verifiedMs: number;
}
export interface Scenario<R> {
  runs: R[];
  medianMs: number;
}
export interface FailoverResult {
  ttlSeconds: number;
  leaderSigkill: Scenario<LeaderRun>;
  leaderSigterm: Scenario<LeaderRun>;
  workerSigkill: Scenario<WorkerRun>;
}

/** watchEvents records when each event on a subject arrived, relative to nothing yet: the caller sets t0. */
function timeOf(nc: NatsConnection, subject: string, match: (ev: Record<string, unknown>) => boolean): { at: () => number; sub: Subscription } {
  let at = NaN;
  const sub = nc.subscribe(subject, {
    callback: (_e, m) => {
      if (Number.isNaN(at) && match(json.decode(m.data) as Record<string, unknown>)) at = performance.now();
    },
  });
  return { at: () => at, sub };
}

async function steady(nc: NatsConnection, masters: number): Promise<StatusResult> {
  const s = await waitFor('a leader that sees every master', async () => {
    const st = (await request(nc, ClientSubject.status, {}, { timeoutMs: 1000, gaffer: true })) as unknown as StatusResult;
    return st.masters.length === masters ? st : undefined;
  }, 30000);
  // Every master should know the leader by now; a few adds through the queue group prove it.
  await sleep(300);
  for (let i = 0; i < 6; i++) await request(nc, ClientSubject.add, { name: `steady-${runId}-${Date.now()}-${i}` }, { gaffer: true });
  return s;
}

async function leaderScenarios(cfg: BenchConfig, log: (s: string) => void): Promise<[Scenario<LeaderRun>, Scenario<LeaderRun>]> {
  const cluster = await LocalCluster.start({ masters: 3, workers: 2, ttlSeconds: cfg.ttlSeconds });
  const nc = await benchConnect(cluster.natsUrl, 'bench-failover');
  try {
    await cluster.ready(2);
    await runLoad({ inflight: 16, count: 100, limitMs: 30000 }, (i) =>
      request(nc, ClientSubject.add, { name: `pre-${runId}-${i}` }, { gaffer: true }).then(() => undefined),
    );
    const out: Record<string, LeaderRun[]> = { SIGKILL: [], SIGTERM: [] };
    for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
      for (let rep = 0; rep < cfg.reps; rep++) {
        const old = (await steady(nc, 3)).leader;
        const child = cluster.masters.get(old)!;
        const elected = timeOf(nc, subjects.event('leader.elected'), (ev) => ev.leader !== old);
        const term = await watchTermEnd(cluster.etcdEndpoints, old);
        await nc.flush();
        const t0 = performance.now();
        child.signal(signal);
        const s = await served(nc, t0, term, { prefix: `lf-${runId}-${signal}-${rep}` }).finally(() => term.close());
        await Promise.race([child.exited(), sleep(10000)]);
        await child.kill();
        elected.sub.unsubscribe();
        const st = (await request(nc, ClientSubject.status, {}, { timeoutMs: 5000, gaffer: true })) as unknown as StatusResult;
        const run: LeaderRun = { signal, killed: old, newLeader: st.leader, electedMs: Math.round((elected.at() - t0) * 10) / 10, ...s };
        out[signal]!.push(run);
        log(`failover leader ${signal} #${rep + 1}: ${old} -> ${st.leader}, new leader served after ${s.servedMs} ms (term end ${s.termEndMs} ms, elected event ${run.electedMs} ms, any success ${s.anyMs} ms, single client ${s.singleMs} ms, worst wait ${s.worstMs} ms, ${s.drained} drained by the old leader)`);
        cluster.startMaster(old);
      }
    }
    const sc = (runs: LeaderRun[]): Scenario<LeaderRun> => ({ runs, medianMs: median(runs.map((r) => r.servedMs)) ?? NaN });
    return [sc(out.SIGKILL!), sc(out.SIGTERM!)];
  } finally {
    await nc.close().catch(() => undefined);
    await cluster.stop(cfg.keepLogs);
  }
}

async function runningOn(nc: NatsConnection, workers: string[]): Promise<Set<string>> {
  const all = new Set<string>();
  for (const w of workers) {
    try {
      const m = await nc.request(subjects.workerStatus(w), json.encode({}), { timeout: 1000 });
      for (const n of (json.decode(m.data) as WorkerStatusResult).running) all.add(n);
    } catch {
      /* not answering yet */
    }
  }
  return all;
}

async function workerScenarioOnce(cfg: BenchConfig, rep: number, log: (s: string) => void): Promise<WorkerRun> {
  const n = cfg.workerKillResources;
  const cluster = await LocalCluster.start({ masters: 2, workers: 0, ttlSeconds: cfg.ttlSeconds, capacity: 100_000 });
  const nc = await benchConnect(cluster.natsUrl, 'bench-worker-failover');
  try {
    const victim = cluster.startWorker('victim');
    await cluster.ready(1);
    const names = new Set<string>();
    const fill = await runLoad({ inflight: 64, count: n, limitMs: 60000 }, async (i) => {
      const name = `wk-${runId}-${rep}-${i}`;
      await request(nc, ClientSubject.add, { name }, { gaffer: true });
      names.add(name);
    });
    if (names.size !== n) throw new Error(`could add only ${names.size} of ${n} resources: ${fill.firstError}`);
    await waitFor(`${n} tasks running on the victim`, async () => (await runningOn(nc, ['victim'])).size === n, 60000);
    cluster.startWorker('s1');
    cluster.startWorker('s2');
    await cluster.ready(3);
    const moved = new Set<string>();
    let allAt = NaN;
    const started = nc.subscribe(subjects.event('task.started'), {
      callback: (_e, m) => {
        const ev = json.decode(m.data) as { name: string; worker: string };
        if (ev.worker !== 'victim' && names.has(ev.name)) moved.add(ev.name);
        if (Number.isNaN(allAt) && moved.size === n) allAt = performance.now();
      },
    });
    const lost = timeOf(nc, subjects.event('worker.lost'), (ev) => ev.worker === 'victim');
    await nc.flush();
    // The rebalancer may have moved a few to the survivors as they joined, before we listened.
    for (const x of await runningOn(nc, ['s1', 's2'])) if (names.has(x)) moved.add(x);
    const t0 = performance.now();
    victim.signal('SIGKILL');
    await waitFor('every resource started on a survivor', async () => !Number.isNaN(allAt), 30000).catch(() => undefined);
    const verified = await waitFor('the survivors to report every resource', async () => {
      const run = await runningOn(nc, ['s1', 's2']);
      for (const x of names) if (!run.has(x)) return false;
      return performance.now();
    }, 30000);
    started.unsubscribe();
    lost.sub.unsubscribe();
    const r = (x: number) => Math.round((x - t0) * 10) / 10;
    const run: WorkerRun = { resources: n, lostMs: r(lost.at()), allRunningMs: r(allAt), verifiedMs: r(verified) };
    log(`failover worker SIGKILL #${rep + 1} (${n} resources): all running elsewhere after ${run.allRunningMs} ms (worker.lost ${run.lostMs} ms, polled ${run.verifiedMs} ms)`);
    return run;
  } finally {
    await nc.close().catch(() => undefined);
    await cluster.stop(cfg.keepLogs);
  }
}

export async function failover(cfg: BenchConfig, log: (s: string) => void): Promise<FailoverResult> {
  const [leaderSigkill, leaderSigterm] = await leaderScenarios(cfg, log);
  const runs: WorkerRun[] = [];
  for (let rep = 0; rep < cfg.reps; rep++) runs.push(await workerScenarioOnce(cfg, rep, log));
  return {
    ttlSeconds: cfg.ttlSeconds,
    leaderSigkill,
    leaderSigterm,
    workerSigkill: { runs, medianMs: median(runs.map((r) => (Number.isFinite(r.allRunningMs) ? r.allRunningMs : r.verifiedMs))) ?? NaN },
  };
}
