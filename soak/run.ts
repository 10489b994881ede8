// `npm run soak`: a bounded hunt for slow leaks. It starts a cluster on
// loopback (3 masters, 3 workers, a 3-member etcd, one nats-server with its
// monitoring port), runs a mixed load for SOAK_MINUTES (soak/load.ts) with
// one fault every SOAK_FAULT_SECONDS (the chaos Injector's kinds), and every
// SOAK_SAMPLE_SECONDS reads each process's RSS, open file descriptors, V8 heap
// (gaffer processes, from their /metrics) and NATS subscriptions (gaffer
// processes, from nats-server's /connz by connection name). Then it fits a
// line through the second half of every series (one per process incarnation)
// and fails when a slope is above its metric's threshold. Writes soak.json
// (every sample) and soak.svg (one chart per metric) to SOAK_OUT, prints a
// table, exits 0 (no steady growth), 1 (growth) or 2 (the run itself failed).
// Knobs: soak/config.ts and soak/README.md.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '#devcluster/cluster.js';
import { freePort, startNats, waitFor, type NatsServer } from '#devcluster/servers.js';
import type { Child } from '#devcluster/child.js';
import { GafferClient } from '#client/client.js';
import { EtcdStore } from '#platform/etcd/store.js';
import { sleep } from '#platform/clock.js';
import { ClientSubject } from '#protocol/subjects.js';
import type { StatusResult } from '#protocol/messages.js';
import { etcdCompact, etcdRevision } from '#harness/etcd.js';
import { Injector, schedule, type FaultKind, type FaultRecord } from '#harness/faults.js';
import { commit } from '#harness/git.js';
import { unhealthy, type Incarnations } from '#harness/observe.js';
import { Rng } from '#harness/rng.js';
import { elapsedLog, runMain, writeJson } from '#harness/runner.js';
import { METRICS, METRIC_INFO, SOAK_FAULT_TIMINGS, soakConfig, type Metric } from './config.js';
import { connectionName, connz, etcdExtras, fdCount, natsVarz, rss, scrape, subsByName } from './sample.js';
import { analyze, fillRoles, incarnation, lines, markExcluded, roleChanges, type FaultWindow, type Sample } from './analyze.js';
import { worst } from './fit.js';
import { byId, plot } from './plot.js';
import { report, type SoakFault, type SoakProcess, type SoakResults } from './report.js';
import { Load } from './load.js';

export type { SoakResults } from './report.js';

const t0 = Date.now();
const log = elapsedLog('soak', t0);

interface Proc {
  id: string;
  role: SoakProcess['role'];
  child(): Child | undefined;
  metricsUrl?: string;
  /** NATS connection name, for gaffer processes. */
  conn?: string;
  /** For etcd members: the client URL (their own sizes are recorded with each sample). */
  etcdUrl?: string;
}

async function main(): Promise<number> {
  const cfg = soakConfig();
  log(
    `seed ${cfg.seed}; ${(cfg.durationMs / 60000).toFixed(2)} min, a sample every ${cfg.sampleMs / 1000} s, ` +
      `${cfg.faultEveryMs ? `a fault every ${cfg.faultEveryMs / 1000} s` : 'no faults'}; replay with SOAK_SEED=${cfg.seed}`,
  );
  const faultRng = new Rng(cfg.seed);
  const loadRng = new Rng(cfg.seed ^ 0x50a4);

  // nats-server with its monitoring port, started here (LocalCluster passes no config to startNats).
  const monitorPort = await freePort();
  const natsDir = mkdtempSync(join(tmpdir(), 'gaffer-soak-nats-'));
  const nats: NatsServer = await startNats({ dir: natsDir, extraConfig: `http: 127.0.0.1:${monitorPort}\n` });
  const monitorUrl = `http://127.0.0.1:${monitorPort}`;
  let c: LocalCluster | undefined;
  let load: Load | undefined;
  let workClient: GafferClient | undefined;
  let checkClient: GafferClient | undefined;
  let store: EtcdStore | undefined;
  const samples: Sample[] = [];
  const faults: SoakFault[] = [];
  const skippedFaults: SoakResults['skippedFaults'] = [];
  const affected: FaultWindow[] = [];
  let finalSubscriptions: Record<string, string[]> = {};
  let compactions = 0;
  let runStart = Date.now();
  let keep = cfg.keepLogs;
  let results: SoakResults | undefined;
  try {
    // etcd keeps its last --snapshot-count raft entries in memory (100,000 by default: hours of this load),
    // so its RSS would climb all run long by design. A small count lets it level off in the first minutes.
    // startEtcd passes no such flag; etcd reads it from the environment its members inherit.
    process.env.ETCD_SNAPSHOT_COUNT = String(cfg.etcdSnapshotCount);
    c = await LocalCluster.start({ natsUrl: nats.url, etcdMembers: cfg.cluster.etcdMembers, ttlSeconds: cfg.cluster.ttlSeconds });
    const cluster = c;
    log(`cluster in ${c.dir}; nats-server monitoring on ${monitorUrl}`);

    // Every gaffer process serves /metrics on a port of its own, kept across restarts: the Injector
    // restarts a killed process with c.startMaster(id) / c.startWorker(id), so those add the flag.
    const metricsPorts = new Map<string, number>();
    const masterIds = Array.from({ length: cfg.cluster.masters }, (_, i) => `m${i + 1}`);
    const workerIds = Array.from({ length: cfg.cluster.workers }, (_, i) => `w${i + 1}`);
    for (const id of [...masterIds, ...workerIds]) metricsPorts.set(id, await freePort());
    const withMetrics = (id: string, extra: string[]): string[] => ['--metrics-port', String(metricsPorts.get(id)), ...extra];
    const startMaster = c.startMaster.bind(c);
    const startWorker = c.startWorker.bind(c);
    c.startMaster = (id: string, extra: string[] = []) => startMaster(id, withMetrics(id, extra));
    c.startWorker = (id: string, extra: string[] = []) => startWorker(id, withMetrics(id, extra));
    for (const id of masterIds) c.startMaster(id);
    for (const id of workerIds) c.startWorker(id);
    await c.ready(workerIds.length, 60000);

    const procs: Proc[] = [
      ...masterIds.map((id): Proc => ({
        id, role: 'master', child: () => cluster.masters.get(id), metricsUrl: `http://127.0.0.1:${metricsPorts.get(id)}/metrics`, conn: connectionName('master', id),
      })),
      ...workerIds.map((id): Proc => ({
        id, role: 'worker', child: () => cluster.workers.get(id), metricsUrl: `http://127.0.0.1:${metricsPorts.get(id)}/metrics`, conn: connectionName('worker', id),
      })),
      { id: 'nats-server', role: 'nats', child: () => nats.child },
      ...c.etcd!.members.map((m): Proc => ({ id: m.name, role: 'etcd', child: () => m.child, etcdUrl: m.clientUrl })),
    ];

    checkClient = await GafferClient.connect(c.natsUrl, { timeoutMs: 3000 });
    workClient = await GafferClient.connect(c.natsUrl, { timeoutMs: cfg.load.clientTimeoutMs });
    store = await EtcdStore.connect(c.etcdEndpoints.split(','), { timeoutMs: 2000 });
    const since: Incarnations = new Map();
    // The nats-server is ours, not the cluster's: restart-nats takes it down.
    const inj = new Injector(c, checkClient, faultRng, SOAK_FAULT_TIMINGS, store, since, [nats]);

    load = new Load(workClient, c.natsUrl, cfg, loadRng, log);
    await load.start();
    runStart = Date.now();
    const deadline = runStart + cfg.durationMs;
    const minutes = (at: number): number => Number(((at - runStart) / 60000).toFixed(4));
    const gafferIds = [...masterIds, ...workerIds];

    // Kills spare the witnesses (SOAK_WITNESSES), so that some series span the whole run: with a fault every
    // 30 s everyone else is killed every few minutes. The Injector picks its own targets, so targets are picked
    // here and the Injector kills them; when every candidate is a witness (the witness leads, say), it is paused instead.
    const witnesses = new Set(cfg.witnesses);
    const killSparing = async (n: number, kind: FaultKind): Promise<FaultRecord & { asked?: FaultKind }> => {
      const rec: FaultRecord = {
        n, kind, target: '?', startedAt: Date.now(), healedAt: 0, recoveredAt: null, downMs: 0, recoverMs: null, afterHealMs: null,
      };
      try {
        const role = kind === 'kill-worker' ? 'worker' : 'master';
        let pool = workerIds;
        if (role === 'master') {
          const leader = (await waitFor('a leader to pick', () => checkClient!.call<StatusResult>(ClientSubject.status, {}, 2000), 15000)).leader;
          pool = kind === 'kill-leader' ? [leader] : masterIds.filter((m) => m !== leader);
        }
        const targets = pool.filter((id) => !witnesses.has(id)).sort();
        if (targets.length === 0) {
          const instead: FaultKind = kind === 'kill-leader' ? 'pause-leader' : kind === 'kill-worker' ? 'pause-worker' : 'pause-follower';
          return { ...(await inj.inject(n, instead)), asked: kind };
        }
        const id = faultRng.pick(targets);
        rec.target = id;
        await inj.killAndRestart(role, id, rec);
      } catch (err) {
        rec.error = (err as Error).message ?? String(err);
      }
      rec.healedAt = Date.now();
      rec.downMs = rec.healedAt - rec.startedAt;
      return rec;
    };

    const sampleOnce = async (): Promise<void> => {
      const at = Date.now();
      const t = minutes(at);
      const [conns, varz] = await Promise.all([connz(monitorUrl), natsVarz(monitorUrl)]);
      const subs = conns ? subsByName(conns) : null;
      await Promise.all(
        procs.map(async (p) => {
          const ch = p.child();
          const pid = ch?.pid;
          if (!ch?.running || pid === undefined) return;
          const [mem, fds, m, etcd] = await Promise.all([
            rss(pid),
            fdCount(pid),
            p.metricsUrl ? scrape(p.metricsUrl) : Promise.resolve(null),
            p.etcdUrl ? etcdExtras(p.etcdUrl) : Promise.resolve(null),
          ]);
          if (mem === null) return; // gone between the check and the read
          const extra = { anonMiB: mem.anonMiB, fileMiB: mem.fileMiB, ...(m ? { majorGcs: m.majorGcs } : {}), ...etcd };
          const role = p.role === 'master' && m?.leader != null ? { role: m.leader ? ('leader' as const) : ('follower' as const) } : {};
          // nats-server's subscriptions: every one it holds (/varz), whoever's; a gaffer process's: its connection's (/connz).
          const mySubs = p.role === 'nats' ? (varz?.subscriptions ?? null) : p.conn && subs ? (subs.get(p.conn) ?? null) : null;
          const busy = p.role === 'worker' && load!.crawling(p.id, cfg.sampleMs, at) ? { busy: true } : {};
          samples.push({ t, id: p.id, pid, rssMiB: mem.rssMiB, heapMiB: m?.heapMiB ?? null, fds, subs: mySubs, ...role, ...busy, extra });
        }),
      );
    };

    const sampler = (async () => {
      let lastNote = Date.now();
      for (let k = 0; ; k++) {
        const at = runStart + k * cfg.sampleMs;
        if (at > deadline) break;
        await sleep(Math.max(0, at - Date.now()));
        await sampleOnce();
        if (Date.now() - lastNote >= 60_000) {
          lastNote = Date.now();
          const now = samples.filter((s) => s.t === samples[samples.length - 1]!.t);
          const req = Object.entries(load!.counts.requests).reduce((n, [, v]) => n + v, 0);
          log(
            `${minutes(Date.now()).toFixed(1)} min: ${req} requests, ${load!.counts.crawls.completed} crawls completed, ${faults.length} faults; RSS ` +
              now.sort((a, b) => byId(a.id, b.id)).map((s) => `${s.id} ${s.rssMiB?.toFixed(0)}`).join(', '),
          );
        }
      }
    })();

    const compactor = (async () => {
      if (cfg.compactEveryMs <= 0) return;
      const urls = cluster.etcd!.members.map((m) => m.clientUrl);
      let previous: number | null = null;
      while (Date.now() + cfg.compactEveryMs <= deadline) {
        await sleep(cfg.compactEveryMs);
        if (previous !== null && (await etcdCompact(urls, previous))) compactions++;
        previous = await etcdRevision(urls);
      }
    })();

    const kinds: FaultKind[] = cfg.faultEveryMs > 0 ? schedule(faultRng, Math.floor(cfg.durationMs / cfg.faultEveryMs) + 1, cfg.kinds) : [];
    for (let n = 1; cfg.faultEveryMs > 0; n++) {
      const at = runStart + n * cfg.faultEveryMs;
      if (at >= deadline) break;
      await sleep(Math.max(0, at - Date.now()));
      // Another fault on a cluster that is not whole again could take etcd below quorum: wait, or skip this one.
      let why: string | undefined;
      const until = Math.min(at + cfg.faultEveryMs / 2, deadline);
      while ((why = await unhealthy(cluster, checkClient, store, since).catch((e: Error) => e.message)) !== undefined && Date.now() < until) await sleep(500);
      if (!nats.child.running) why = 'nats-server is not running';
      if (why !== undefined) {
        skippedFaults.push({ t: minutes(Date.now()), why });
        log(`fault #${n} skipped: the cluster is not whole (${why})`);
        continue;
      }
      const asked = kinds[(n - 1) % kinds.length]!;
      const rec: FaultRecord & { asked?: FaultKind } =
        asked.startsWith('kill-') && witnesses.size > 0 ? await killSparing(n, asked) : await inj.inject(n, asked);
      const kind = rec.kind;
      const target = rec.target.split(' ')[0]!;
      // A nats-server restart cuts every gaffer process's connection: all of them resubscribe.
      const ids = kind === 'restart-nats' ? ['nats-server', ...gafferIds] : [target];
      affected.push({ ids, from: minutes(rec.startedAt), to: minutes(rec.healedAt) });
      faults.push({
        n, kind, ...(rec.asked ? { asked: rec.asked } : {}), target: rec.target, affects: ids, t: minutes(rec.startedAt), healedT: minutes(rec.healedAt),
        startedAt: new Date(rec.startedAt).toISOString(), downMs: rec.downMs, ...(rec.error ? { error: rec.error } : {}),
      });
      log(
        `fault #${n} ${kind} ${rec.target}: down ${rec.downMs} ms${rec.asked ? ` (instead of ${rec.asked}: every candidate is a witness)` : ''}` +
          `${rec.error ? ` [injector error: ${rec.error}]` : ''}`,
      );
    }
    await sampler;
    await compactor;
    const conns = await connz(monitorUrl);
    finalSubscriptions = Object.fromEntries(
      (conns ?? []).filter((x) => x.name.startsWith('gaffer-') && x.name !== 'gaffer-client').map((x) => [x.name, [...x.subjects].sort()]),
    );
    log('stopping the load');
    await load.stop();
    log(`load: ${JSON.stringify(load.counts.crawls)}; events ${Object.values(load.counts.events).reduce((a, b) => a + b, 0)}`);

    // The verdict. A master's role change is an event on it, like a fault.
    fillRoles(samples, (id) => masterIds.includes(id));
    const elections = roleChanges(samples);
    markExcluded(samples, [...affected, ...elections], cfg.quietMs / 60000);
    const { fits } = analyze(samples, cfg);
    const processes = new Map<string, SoakProcess>();
    for (const s of samples) {
      const key = incarnation(s);
      const role = procs.find((p) => p.id === s.id)!.role;
      const p = processes.get(key) ?? { key, id: s.id, role, pid: s.pid, firstT: s.t, lastT: s.t, samples: 0 };
      p.firstT = Math.min(p.firstT, s.t);
      p.lastT = Math.max(p.lastT, s.t);
      p.samples++;
      processes.set(key, p);
    }
    // A gaffer process without a single heap or subscription reading means the sampling is broken, not the process.
    const blind: string[] = [];
    for (const p of procs) {
      const mine = samples.filter((s) => s.id === p.id);
      if (mine.length === 0) blind.push(`${p.id}: no samples`);
      else if (p.metricsUrl && !mine.some((s) => s.heapMiB !== null)) blind.push(`${p.id}: no heap reading from ${p.metricsUrl}`);
      else if (p.conn && !mine.some((s) => s.subs !== null)) blind.push(`${p.id}: no connection named ${p.conn} in /connz`);
    }
    const thresholds = Object.fromEntries(
      METRICS.map((m) => [m, { perMinute: cfg.thresholds[m], unit: `${METRIC_INFO[m].unit}/min`, env: METRIC_INFO[m].env }]),
    ) as SoakResults['rules']['thresholds'];
    const worstOf = Object.fromEntries(
      METRICS.map((m) => {
        const w = worst(fits.filter((f) => f.metric === m));
        return [m, w ? { key: w.key, slope: w.slope, threshold: w.threshold, status: w.status } : null];
      }),
    ) as SoakResults['worst'];
    const failing = fits.filter((f) => f.status === 'fail').length;
    keep ||= failing > 0 || blind.length > 0;
    results = {
      meta: {
        startedAt: new Date(runStart).toISOString(),
        finishedAt: new Date().toISOString(),
        durationMs: Date.now() - runStart,
        seed: cfg.seed,
        commit: commit(),
        node: process.version,
        cpus: cpus().length,
        logsDir: keep ? c.dir : null,
        config: cfg,
      },
      rules: {
        fit:
          'least squares over the second half (by time) of each series (a process incarnation; for a master, its leader samples and its follower samples apart), ' +
          'through the lowest sample of each floorSeconds, without the samples taken during a fault on that process (or a master\'s role change) or within ' +
          'the quiet period after it; not judged under minWindowMin, minPoints, or (heap and RSS of gaffer processes) minMajorGcs; ' +
          'fails when the slope is above the threshold and at least minT standard errors (Newey-West over lagSeconds) above zero',
        minWindowMin: cfg.minWindowMin,
        minPoints: cfg.minPoints,
        minT: cfg.minT,
        lagSeconds: cfg.lagMin * 60,
        floorSeconds: cfg.floorMin * 60,
        minMajorGcs: cfg.minMajorGcs,
        quietSeconds: cfg.quietMs / 1000,
        thresholds,
      },
      processes: [...processes.values()].sort((a, b) => byId(a.id, b.id) || a.firstT - b.firstT),
      faults,
      roleChanges: elections.map((e) => ({ id: e.ids[0]!, t: e.to })),
      skippedFaults,
      samples: [...samples].sort((a, b) => a.t - b.t || byId(a.id, b.id)),
      fits,
      worst: worstOf,
      load: load.counts,
      etcdCompactions: compactions,
      finalSubscriptions,
      summary: {
        series: fits.length,
        judged: fits.filter((f) => f.status !== 'short').length,
        short: fits.filter((f) => f.status === 'short').length,
        noise: fits.filter((f) => f.status === 'noise').length,
        failing,
        pass: failing === 0,
      },
    };
    const jsonPath = join(cfg.outDir, 'soak.json');
    const svgPath = join(cfg.outDir, 'soak.svg');
    writeJson(jsonPath, results, 1);
    writeFileSync(
      svgPath,
      plot({
        title: `gaffer soak: ${(results.meta.durationMs / 60000).toFixed(1)} min, ${faults.length} faults, ${failing === 0 ? 'no steady growth' : `${failing} series growing`}`,
        subtitle:
          `${results.meta.startedAt.slice(0, 16).replace('T', ' ')} UTC, commit ${results.meta.commit}, seed ${cfg.seed}; ` +
          `fit through the floor (lowest sample per ${cfg.floorMin * 60} s) of the second half of each series, ${cfg.quietMs / 1000} s after a fault on a process left out`,
        durationMin: results.meta.durationMs / 60000,
        faults: faults.map((f) => ({ t: f.t, kind: f.kind, target: f.target.split(' ')[0]! })),
        charts: METRICS.map((m: Metric) => ({
          title: METRIC_INFO[m].title,
          unit: METRIC_INFO[m].unit,
          lines: lines(samples, m),
          fits: fits.filter((f) => f.metric === m).map((f) => ({ id: f.id, key: f.key, fit: f })),
        })),
      }),
    );
    process.stdout.write(`${report(results)}\nresults: ${jsonPath}\nplot: ${svgPath}\n`);
    if (blind.length > 0) {
      process.stderr.write(`soak: sampling failed: ${blind.join('; ')}\n`);
      return 2;
    }
    return failing > 0 ? 1 : 0;
  } finally {
    await load?.stop().catch(() => undefined);
    await workClient?.close().catch(() => undefined);
    await checkClient?.close().catch(() => undefined);
    store?.close();
    await c?.stop(keep || results === undefined);
    await nats.stop();
    if (keep || results === undefined) log(`logs kept in ${c?.dir ?? '(no cluster)'} and ${natsDir}`);
    else rmSync(natsDir, { recursive: true, force: true });
  }
}

runMain('soak', main, { crashCode: 2 });
