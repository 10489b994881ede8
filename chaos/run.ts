// `npm run chaos`: start a 3-master, 4-worker cluster on a 3-member etcd and
// a nats-server (all on loopback, all ours), keep a client adding and
// deleting, inject CHAOS_FAULTS random faults one at a time (waiting for
// recovery after each), then stop the client, wait for the state to converge
// and check the promise from what the processes reported. Prints a table,
// writes results.json, exits 1 on any violation (2 if the run itself failed).
// See chaos/config.ts for the knobs.

import { rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { LocalCluster } from '#devcluster/cluster.js';
import { waitFor } from '#devcluster/servers.js';
import { GafferClient } from '#client/client.js';
import { EtcdStore } from '#platform/etcd/store.js';
import { sleep } from '#platform/clock.js';
import { Injector, schedule } from '#harness/faults.js';
import { commit } from '#harness/git.js';
import { workerLogs } from '#harness/logs.js';
import { waitRecovered, type Recovery } from '#harness/observe.js';
import { Rng } from '#harness/rng.js';
import { elapsedLog, runMain, writeJson } from '#harness/runner.js';
import { snapshot, type Snapshot } from '#harness/snapshot.js';
import { chaosConfig } from './config.js';
import { check, violationCount } from './check.js';
import { byKind, eitherWayOut, overlapsOut, report, requestStats, type Results } from './report.js';
import { Workload } from './workload.js';
import { Crawls } from './crawls.js';
import { Schedules } from './schedules.js';
import { isShardName } from '#protocol/shards.js';
import { noShardedCounts, ShardedCrawls, type ShardedCrawlCounts, type ShardedCrawlFinding } from './sharded-crawls.js';

const t0 = Date.now();
const log = elapsedLog('chaos', t0);

async function main(): Promise<number> {
  const cfg = chaosConfig();
  log(`seed ${cfg.seed}, ${cfg.faults} faults${cfg.quick ? ' (quick)' : ''}; replay with CHAOS_SEED=${cfg.seed}`);
  const faultRng = new Rng(cfg.seed);
  const workRng = new Rng(cfg.seed ^ 0x5eed);
  const c = await LocalCluster.start({ ...cfg.cluster });
  log(`cluster in ${c.dir}`);
  let wl: Workload | undefined;
  let inj: Injector | undefined;
  let final: Snapshot = { at: Date.now(), list: [], running: {} };
  let finalRecovery: Recovery = { ok: false, at: Date.now(), why: 'not reached' };
  let stoppedEarly: string | null = null;
  let workClient: GafferClient | undefined;
  let checkClient: GafferClient | undefined;
  let store: EtcdStore | undefined;
  let endOfRun: number;
  let crawls: Crawls | undefined;
  let crawlNotes: string[] = [];
  let crawlCheck: Awaited<ReturnType<Crawls['check']>> = { findings: [], crawls: 0, pages: 0 };
  let sharded: ShardedCrawls | undefined;
  let shardedNotes: string[] = [];
  let schedules: Schedules | undefined;
  let scheduleNotes: string[] = [];
  let scheduleCheck: Awaited<ReturnType<Schedules['check']>> = { findings: [], fires: 0 };
  try {
    await c.ready(cfg.cluster.workers, 60000);
    checkClient = await GafferClient.connect(c.natsUrl, { timeoutMs: 3000 });
    workClient = await GafferClient.connect(c.natsUrl, { timeoutMs: cfg.workload.clientTimeoutMs });
    store = await EtcdStore.connect(c.etcdEndpoints.split(','), { timeoutMs: 2000 });
    const observed = { c, client: checkClient, store, since: new Map<string, number>() };
    const base = await waitRecovered(observed, () => new Set(), cfg.settleMs, 60000);
    if (!base.ok) throw new Error(`the cluster never came up whole: ${base.why}`);
    wl = new Workload(workClient, cfg.workload, workRng);
    inj = new Injector(c, checkClient, faultRng, cfg, store, observed.since);
    wl.start();
    crawls = new Crawls(wl, checkClient, cfg.crawls, log);
    if (cfg.crawls.concurrent > 0) crawls.start();
    sharded = new ShardedCrawls(wl, checkClient, cfg.shardedCrawls, log);
    sharded.start();
    schedules = new Schedules(wl, checkClient, cfg.schedules, log);
    await schedules.start();
    // Their runs change every few seconds by design: the schedule checker judges them, not the recovery check.
    const dirty = (since: number) => new Set([...wl!.dirty(since), ...schedules!.names]);
    await sleep(cfg.warmupMs);
    const deadline = Date.now() + cfg.deadlineMs;
    const kinds = schedule(faultRng, cfg.faults, cfg.kinds);
    for (let i = 0; i < kinds.length; i++) {
      if (Date.now() > deadline) {
        stoppedEarly = `the ${cfg.deadlineMs} ms deadline passed after ${i} faults`;
        log(stoppedEarly);
        break;
      }
      await sleep(faultRng.between(cfg.gapMs[0], cfg.gapMs[1]));
      const rec = await inj.inject(i + 1, kinds[i]!);
      const rcv = await waitRecovered(observed, dirty, cfg.settleMs, cfg.recoverMs);
      if (rcv.ok) {
        rec.recoveredAt = rcv.at;
        rec.recoverMs = rcv.at - rec.startedAt;
        rec.afterHealMs = rcv.at - rec.healedAt;
        wl.markRecovered(rcv.at);
      } else {
        rec.unrecovered = rcv.why ?? 'unknown';
      }
      log(
        `#${rec.n} ${rec.kind} ${rec.target}: down ${rec.downMs} ms, ` +
          (rcv.ok ? `recovered in ${rec.recoverMs} ms (${rec.afterHealMs} after heal)` : `NOT recovered: ${rec.unrecovered}`) +
          (rec.error ? ` [injector error: ${rec.error}]` : '') +
          `; ${wl.ops.length} requests so far`,
      );
      if (!rcv.ok) {
        // Another fault on a cluster that is not whole could take etcd below quorum: stop here.
        stoppedEarly = `no recovery after fault #${rec.n}`;
        break;
      }
      // The next fault should meet a client that is sending again, not one waiting out attempts lost in this one.
      const flowing = await waitFor('answers again', async () => wl!.completedAfter(rcv.at) >= cfg.workload.inflight, cfg.recoverMs).then(
        () => true,
        () => false,
      );
      rec.flowingMs = flowing ? Date.now() - rcv.at : null;
      if (!flowing) log(`#${rec.n}: the client did not get ${cfg.workload.inflight} answers within ${cfg.recoverMs} ms of recovery`);
    }
    log('stopping the workload');
    const faultsEnded = Date.now();
    await wl.stop();
    if (schedules.names.length > 0) {
      scheduleNotes = await schedules.finish();
      scheduleCheck = await schedules.check(faultsEnded);
      log(`${schedules.names.length} schedules, ${scheduleCheck.fires} fires checked: ${scheduleCheck.findings.length} findings`);
    }
    if (cfg.crawls.concurrent > 0) {
      log('waiting for the crawls to complete');
      crawlNotes = await crawls.finish(cfg.recoverMs * 2);
      crawlCheck = await crawls.check(checkClient.nc, store);
      log(`${crawlCheck.crawls} crawls, ${crawlCheck.pages} pages checked: ${crawlCheck.findings.length} findings`);
    }
    if (cfg.shardedCrawls.concurrent > 0) {
      log('waiting for the sharded crawls to complete');
      shardedNotes = await sharded.finish(cfg.recoverMs * 2);
      await sharded.collect(checkClient.nc);
    }
    finalRecovery = await waitRecovered(observed, () => new Set(), 0, cfg.recoverMs);
    log(finalRecovery.ok ? 'final state converged' : `final state did not converge: ${finalRecovery.why}`);
    final = await snapshot(c, checkClient, 5000).catch((err) => {
      log(`final snapshot failed: ${(err as Error).message}`);
      return final;
    });
  } finally {
    await crawls?.close();
    await sharded?.close();
    await workClient?.close().catch(() => undefined);
    await checkClient?.close().catch(() => undefined);
    store?.close();
    await c.stop(true);
    endOfRun = Date.now();
  }

  const logs = workerLogs(c);
  const ops = wl?.ops ?? [];
  const faults = inj?.faults ?? [];
  const r = check({ ops, logs, deaths: inj?.deaths ?? [], pauses: inj?.pauses ?? [], final, endOfRun });
  const shardedCheck: { findings: ShardedCrawlFinding[]; counts: ShardedCrawlCounts; notes: string[] } = sharded
    ? sharded.check({ logs, deaths: inj?.deaths ?? [], pauses: inj?.pauses ?? [], endOfRun })
    : { findings: [], counts: noShardedCounts(), notes: [] };
  if (sharded) log(`${shardedCheck.counts.started} sharded crawls, ${shardedCheck.counts.pagesChecked} pages, ${shardedCheck.counts.shardRuns} shard runs checked: ${shardedCheck.findings.length} findings`);
  // An overlap of two runs of one shard is among the run checker's overlaps already: listed with the sharded crawls, counted once.
  const shardedCounted = shardedCheck.findings.filter((f) => f.kind !== 'shard-owner-overlap').length;
  const unrecovered = faults
    .filter((f) => f.recoveredAt === null)
    .map((f) => ({ n: f.n, kind: f.kind, target: f.target, why: f.unrecovered ?? 'unknown' }));
  const notes = [
    ...faults.filter((f) => f.error).map((f) => `fault #${f.n} ${f.kind}: injector error: ${f.error}`),
    ...crawlNotes,
    ...shardedNotes,
    ...shardedCheck.notes,
    ...scheduleNotes,
    ...r.notes,
  ];
  // A final state that never converged shows up as orphans; say why too.
  if (!finalRecovery.ok) notes.unshift(`final convergence not reached: ${finalRecovery.why}`);
  const total = violationCount(r) + unrecovered.length + crawlCheck.findings.length + scheduleCheck.findings.length + shardedCounted;
  // Keep the logs for anything worth a look: violations, anomalies, refuted fences.
  const keep = cfg.keepLogs || total > 0 || notes.length > 0 || r.refutedStops.length > 0;
  const results: Results = {
    meta: {
      startedAt: new Date(t0).toISOString(),
      finishedAt: new Date().toISOString(),
      durationMs: Date.now() - t0,
      seed: cfg.seed,
      faultsRequested: cfg.faults,
      quick: cfg.quick,
      commit: commit(),
      node: process.version,
      cpus: cpus().length,
      config: cfg,
      logsDir: keep ? c.dir : null,
      stoppedEarly,
    },
    faults,
    byKind: byKind(faults),
    requests: requestStats(ops),
    eitherWay: eitherWayOut(r.eitherWay),
    final: { converged: finalRecovery.ok, why: finalRecovery.ok ? null : (finalRecovery.why ?? null), resources: final.list.filter((x) => !isShardName(x.name)).length },
    checked: {
      taskLines: r.taskLines,
      runs: r.runs,
      lateStops: r.lateStops,
      ifStopsCountedWhenLogged: r.ifStopsCountedWhenLogged,
      refutedStops: r.refutedStops,
      resumedPastLease: r.resumedPastLease,
    },
    crawls: { started: crawlCheck.crawls, pagesChecked: crawlCheck.pages },
    schedules: { resources: schedules?.names.length ?? 0, firesChecked: scheduleCheck.fires },
    shardedCrawls: { ...shardedCheck.counts, shards: cfg.shardedCrawls.shards, perHostRps: cfg.shardedCrawls.perHostRps },
    violations: {
      lost: r.lost, resurrected: r.resurrected, reanswered: r.reanswered, orphaned: r.orphaned, overlaps: overlapsOut(r, faults), unrecovered, results: crawlCheck.findings,
      schedules: scheduleCheck.findings,
      shardedCrawls: shardedCheck.findings,
    },
    summary: {
      lost: r.lost.length,
      resurrected: r.resurrected.length,
      reanswered: r.reanswered.length,
      orphaned: r.orphaned.length,
      overlaps: r.overlaps.length,
      longestOverlapMs: r.longestOverlapMs,
      unrecovered: unrecovered.length,
      results: crawlCheck.findings.length,
      schedules: scheduleCheck.findings.length,
      shardedCrawls: shardedCounted,
      total,
    },
    nameOverlaps: r.nameOverlaps.map((o) => ({ name: o.name, workers: o.workers, ms: o.ms, ids: o.id })),
    notes,
    ops,
  };
  writeJson(cfg.out, results);
  if (keep) log(`logs kept in ${c.dir}`);
  else rmSync(c.dir, { recursive: true, force: true });
  process.stdout.write(`${report(results)}\nresults: ${cfg.out}\n`);
  return total > 0 ? 1 : 0;
}

runMain('chaos', main, { crashCode: 2 });
