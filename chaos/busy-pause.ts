// `node dist/chaos/busy-pause.js [rounds]`: a targeted reproduction of one
// race the chaos run found. A worker SIGSTOPped while it is busy handling
// assign messages, and held past its lease TTL, may on SIGCONT handle the
// assigns queued in its socket (starting their tasks) before its overdue
// fence timer fires, while the leader has already moved that work to another
// worker. (Stopped while idle in epoll_wait, it wakes with EINTR and runs its
// timers first, so the fence wins; hence the burst.)
//
// Each round: a burst of adds, a SIGSTOP of w1 a few ms into it, 3.2 s
// paused (TTL 2 s), SIGCONT, then the chaos checker over both workers' logs.
// Exits 1 with the overlapping runs as soon as one is found, 0 if none was
// found in all rounds (which does not prove the race is gone).

import { LocalCluster } from '#devcluster/cluster.js';
import { GafferClient } from '#client/client.js';
import type { Pause } from '#harness/faults.js';
import { workerLogs } from '#harness/logs.js';
import { runMain } from '#harness/runner.js';
import { check } from './check.js';
import { sleep } from '#platform/clock.js';

const log = (s: string): void => void process.stderr.write(`[busy-pause] ${s}\n`);

async function main(): Promise<number> {
  const rounds = Number(process.argv[2] ?? process.env.BUSY_ROUNDS ?? 15);
  const c = await LocalCluster.start({ masters: 1, workers: 2, ttlSeconds: 2 });
  const pauses: Pause[] = [];
  let found = false;
  let client: GafferClient | undefined;
  try {
    await c.ready(2, 60000);
    client = await GafferClient.connect(c.natsUrl, { timeoutMs: 15000 });
    for (let round = 0; round < rounds && !found; round++) {
      const names = Array.from({ length: 60 }, (_, i) => `busy-${round}-${i}`);
      const adds = Promise.allSettled(names.map((n) => client!.add(n)));
      await sleep(5 + (round % 5) * 5);
      const w = c.workers.get('w1')!;
      w.pause();
      const from = Date.now();
      await sleep(3200);
      const to = Date.now();
      w.resume();
      pauses.push({ target: 'w1', from, to });
      await adds;
      await sleep(2500);
      const logs = workerLogs(c);
      const r = check({ ops: [], logs, deaths: [], pauses, final: { at: 0, list: [], running: {} }, endOfRun: Date.now() });
      log(`round ${round + 1}/${rounds}: ${r.refutedStops.length} refuted late fences, ${r.overlaps.length} overlaps`);
      if (r.overlaps.length > 0) {
        found = true;
        for (const o of r.overlaps) {
          process.stdout.write(`OVERLAP ${o.name} (${o.id}) on ${o.workers.join(' and ')} for ${o.ms} ms\n`);
          for (const run of o.runs) process.stdout.write(`  ${run.worker} ${run.from}..${run.to} (${run.end})\n    ${run.startLine}\n    ${run.stopLine ?? ''}\n`);
        }
        for (const x of r.refutedStops) process.stdout.write(`REFUTED ${x}\n`);
      }
      await Promise.allSettled(names.map((n) => client!.delete(n)));
      await sleep(1500);
    }
  } finally {
    await client?.close().catch(() => undefined);
    await c.stop(true);
  }
  log(found ? `reproduced; logs in ${c.dir}` : `not reproduced in ${rounds} rounds; logs in ${c.dir}`);
  return found ? 1 : 0;
}

runMain('busy-pause', main, { crashCode: 2 });
