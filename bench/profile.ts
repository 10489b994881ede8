// Profile: the add-via-follower cell once more (at the top in-flight level, or BENCH_PROFILE_INFLIGHT),
// in a cluster of its own, with the leader under `node --cpu-prof`. The
// leader is stopped with SIGTERM so node writes the profile; we keep it next
// to results.json and summarise its self time.

import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BenchConfig } from './config.js';
import { addCell, followerCluster } from './add.js';
import type { Cell } from './load.js';
import { summarizeFile, type ProfileSummary } from './profile-summary.js';

export interface ProfileResult {
  cell: Cell;
  file: string;
  /** The measured cell only (samples from its warmup's end to its end, offsets taken from the leader's spawn). */
  summary: ProfileSummary;
  /** The whole life of the leader process, start-up included. */
  whole: ProfileSummary;
}

export async function profile(cfg: BenchConfig, log: (s: string) => void): Promise<ProfileResult> {
  const dir = mkdtempSync(join(tmpdir(), 'gaffer-bench-prof-'));
  try {
    const fc = await followerCluster(cfg, { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir] });
    let cell: Cell;
    let window: { fromMs: number; toMs: number };
    try {
      const inflight = cfg.profileInflight;
      const from = performance.now();
      cell = await addCell(fc.nc, cfg, 'follower', inflight, '-prof');
      // The profile starts with the process: keep only the measured cell (after its warmup), not start-up.
      window = { fromMs: Math.round(from + cfg.warmupMs - fc.leaderSpawnedAt), toMs: Math.round(performance.now() - fc.leaderSpawnedAt) };
      log(`profile: add via follower@${inflight} under --cpu-prof: ${cell.throughput}/s p50 ${cell.p50} ms p99 ${cell.p99} ms`);
      await fc.leader.stop(15000);
    } finally {
      await fc.stop();
    }
    const found = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
    if (found.length !== 1) throw new Error(`expected one .cpuprofile from the leader in ${dir}, found ${found.length}`);
    const file = join(dirname(cfg.out), 'leader-add-follower.cpuprofile');
    copyFileSync(join(dir, found[0]!), file);
    return { cell, file, summary: summarizeFile(file, 20, window), whole: summarizeFile(file, 10) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
