// `npm run bench`: start our own servers and clusters on loopback, measure
// floors, resource.add, failover and scale, time the leader's planning of a
// mass loss in process, crawl a local site beside Scrapy,
// profile the leader once (and, when named, the million and crawl-scale
// parts), print a table and write results.json. One part
// failing is recorded and the rest still run; the exit code is 1 if any part
// failed. See bench/README.md.

import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { commit, dirty } from '#harness/git.js';
import { clockLog, runMain, writeJson } from '#harness/runner.js';
import { benchConfig, type Section } from './config.js';
import { floors } from './floors.js';
import { add } from './add.js';
import { failover } from './failover.js';
import { scale } from './scale.js';
import { planBench } from './plan.js';
import { crawl } from './crawl.js';
import { profile } from './profile.js';
import { million } from './million.js';
import { crawlScale } from './crawl-scale.js';
import { verdicts, vsFloors } from './ratios.js';
import { ok, type Results } from './results.js';
import { report } from './report.js';

const log = clockLog('bench');

async function main(): Promise<number> {
  const cfg = benchConfig();
  const { only, ...rest } = cfg;
  const r: Results = {
    meta: {
      startedAt: new Date().toISOString(),
      quick: cfg.quick,
      only: [...only],
      commit: commit(),
      dirty: dirty(['src', 'actors']),
      node: process.version,
      cpus: cpus().length,
      loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
      config: rest,
      sectionMs: {},
    },
    floors: { skipped: true },
    add: { skipped: true },
    failover: { skipped: true },
    scale: { skipped: true },
    plan: { skipped: true },
    crawl: { skipped: true },
    profile: { skipped: true },
    million: { skipped: true },
    'crawl-scale': { skipped: true },
    vsFloors: [],
    verdicts: [],
  };
  const save = () => {
    const parts = { floors: ok(r.floors), add: ok(r.add), failover: ok(r.failover), scale: ok(r.scale), crawl: ok(r.crawl), crawlScale: ok(r['crawl-scale']) };
    r.vsFloors = vsFloors(parts);
    r.verdicts = verdicts(parts);
    writeJson(cfg.out, r);
  };
  const steps: Array<[Section, () => Promise<unknown>]> = [
    ['floors', () => floors(cfg, log)],
    ['add', () => add(cfg, log)],
    ['failover', () => failover(cfg, log)],
    ['scale', () => scale(cfg, log)],
    ['plan', () => planBench(cfg, log)],
    ['crawl', () => crawl(cfg, log)],
    ['profile', () => profile(cfg, log)],
    ['million', () => million(cfg, log)],
    ['crawl-scale', () => crawlScale(cfg, log)],
  ];
  let failed = 0;
  for (const [name, run] of steps) {
    if (!only.has(name)) continue;
    log(`${name}: starting`);
    const t0 = performance.now();
    try {
      (r as unknown as Record<string, unknown>)[name] = await run();
    } catch (err) {
      failed++;
      log(`${name}: FAILED: ${(err as Error).stack ?? err}`);
      (r as unknown as Record<string, unknown>)[name] = { error: (err as Error).message ?? String(err), ms: Math.round(performance.now() - t0) };
    }
    r.meta.sectionMs[name] = Math.round(performance.now() - t0);
    save();
  }
  r.meta.finishedAt = new Date().toISOString();
  save();
  process.stdout.write(`${report(r)}\nresults: ${cfg.out}\n`);
  return failed > 0 ? 1 : 0;
}

runMain('bench', main, { crashCode: 1 });
