// Profile: the add-via-follower cell at the top in-flight level once more,
// in a cluster of its own, with the leader under `node --cpu-prof`. The
// leader is stopped with SIGTERM so node writes the profile; we keep it next
// to results.json and summarise its self time.

import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { BenchConfig } from './config.js';
import { addCell, followerCluster } from './add.js';
import type { Cell } from './load.js';
import { summarizeFile, type ProfileSummary } from './profile-summary.js';

export interface ProfileResult {
  cell: Cell;
  file: string;
  summary: ProfileSummary;
}

export async function profile(cfg: BenchConfig, log: (s: string) => void): Promise<ProfileResult> {
  const dir = mkdtempSync(join(tmpdir(), 'gaffer-bench-prof-'));
  try {
    const fc = await followerCluster(cfg, { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir] });
    let cell: Cell;
    try {
      const inflight = cfg.levels[cfg.levels.length - 1]!;
      cell = await addCell(fc.nc, cfg, 'follower', inflight, '-prof');
      log(`profile: add via follower@${inflight} under --cpu-prof: ${cell.throughput}/s p50 ${cell.p50} ms p99 ${cell.p99} ms`);
      await fc.leader.stop(15000);
    } finally {
      await fc.stop();
    }
    const found = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
    if (found.length !== 1) throw new Error(`expected one .cpuprofile from the leader in ${dir}, found ${found.length}`);
    const file = join(dirname(cfg.out), 'leader-add-follower.cpuprofile');
    copyFileSync(join(dir, found[0]!), file);
    return { cell, file, summary: summarizeFile(file, 20) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
