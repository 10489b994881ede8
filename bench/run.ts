// `npm run bench`: start our own servers and clusters on loopback, measure
// floors, resource.add, failover and scale, time the leader's planning of a
// mass loss in process, crawl a local site beside Scrapy,
// profile the leader once, print a table and write results.json. One part
// failing is recorded and the rest still run; the exit code is 1 if any part
// failed. See bench/README.md.

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { benchConfig, type Section } from './config.js';
import { floors } from './floors.js';
import { add } from './add.js';
import { failover } from './failover.js';
import { scale } from './scale.js';
import { planBench } from './plan.js';
import { crawl } from './crawl.js';
import { profile } from './profile.js';
import { million } from './million.js';
import { verdicts, vsFloors } from './ratios.js';
import { ok, type Results } from './results.js';
import { report } from './report.js';

function dirty(): boolean {
  try {
    return execFileSync('git', ['status', '--porcelain', '--', 'src', 'actors'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
  } catch {
    return false;
  }
}

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

const log = (s: string): void => void process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

async function main(): Promise<number> {
  const cfg = benchConfig();
  const { only, ...rest } = cfg;
  const r: Results = {
    meta: {
      startedAt: new Date().toISOString(),
      quick: cfg.quick,
      only: [...only],
      commit: commit(),
      dirty: dirty(),
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
    vsFloors: [],
    verdicts: [],
  };
  const save = () => {
    const parts = { floors: ok(r.floors), add: ok(r.add), failover: ok(r.failover), scale: ok(r.scale), crawl: ok(r.crawl) };
    r.vsFloors = vsFloors(parts);
    r.verdicts = verdicts(parts);
    mkdirSync(dirname(cfg.out), { recursive: true });
    writeFileSync(cfg.out, `${JSON.stringify(r, null, 2)}\n`);
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

// Signals end the run through process.exit, so every Child we started is killed on the way out.
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
