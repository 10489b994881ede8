// Burst: what a plain NATS client (nats.js, no gaffer code, no retries) sees
// from a fresh 3-master, 3-worker cluster run as `gaffer dev` runs it (each
// process with the dev watchdog). Not part of `npm run bench`; run it alone:
//
//   npm run build && node dist/bench/burst.js
//
// 1. Bursts after idle spells (issue 19's table): N concurrent adds after
//    5 s/30, 5 s/100, 10 s/30, 2 s/200, then 500 right after: answered ok,
//    "no responders" (503), timeouts.
// 2. A SIGSTOPped master: one of the three paused, a client sending adds one
//    after another with 1 s timeouts for 10 s; lost in the first 4 s, 4-8 s
//    and after 8 s. Right after idle, and right after a burst of 1,000.
// 3. The typed client through a leader SIGKILL: one GafferClient sending adds
//    one after another; the longest add of each run (the one the kill caught),
//    and p99 of all.
// 4. Event-loop stalls and long GC pauses the processes logged meanwhile: the
//    false-positive margin of the watchdog's limit.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect, type NatsConnection } from 'nats';
import { LocalCluster } from '#devcluster/cluster.js';
import { waitFor } from '#devcluster/servers.js';
import { GafferClient } from '#client/client.js';
import { DEV_WATCHDOG_MS } from '#platform/watchdog.js';
import { StallLog } from '#platform/stall.js';
import { percentile } from '#lib/stats.js';
import { numbersRight, table } from '#lib/table.js';
import { sleep } from './load.js';
import { runId } from './wire.js';
import { plainAdd } from '#test/fixtures/plain-add.js';


interface Tally {
  ok: number;
  noResponders: number;
  timeout: number;
  other: number;
}

/** burst sends n plain adds at once and counts how they ended. */
async function burst(nc: NatsConnection, n: number, prefix: string): Promise<Tally> {
  const t: Tally = { ok: 0, noResponders: 0, timeout: 0, other: 0 };
  const ends = await Promise.all(Array.from({ length: n }, (_, i) => plainAdd(nc, `${prefix}-${i}`, 10_000)));
  for (const { end } of ends) t[end]++;
  return t;
}

const ROUNDS: ReadonlyArray<{ idleMs: number; n: number }> = [
  { idleMs: 5000, n: 30 },
  { idleMs: 5000, n: 100 },
  { idleMs: 10_000, n: 30 },
  { idleMs: 2000, n: 200 },
  { idleMs: 0, n: 500 },
];

async function burstTable(nc: NatsConnection): Promise<string> {
  const rows: Array<Array<string | number>> = [];
  for (const [i, r] of ROUNDS.entries()) {
    await sleep(r.idleMs);
    const t = await burst(nc, r.n, `burst-${runId}-${i}`);
    rows.push([r.idleMs ? `${r.idleMs / 1000} s` : 'none (right after)', r.n, t.ok, t.noResponders, t.timeout, t.other]);
  }
  return table(['after idle', 'concurrent adds', 'answered ok', 'no responders (503)', 'timeouts', 'other'], rows, { align: ['left', 'right', 'right', 'right', 'right', 'right'], rule: true });
}

/** threeMasters waits until a leader sees all three masters, restarting any that is not running. */
async function threeMasters(c: LocalCluster): Promise<string> {
  for (const m of c.masters.values()) if (!m.running) m.start();
  return (await waitFor('three masters', async () => {
    const s = await (await c.client()).status().catch(() => undefined);
    return s && s.masters.length === 3 ? s : undefined;
  }, 30_000)).leader;
}

/** hung pauses a follower and sends plain adds one after another with 1 s timeouts for 10 s. */
async function hung(c: LocalCluster, nc: NatsConnection, tag: string, label: string): Promise<Array<string | number>> {
  const leader = await threeMasters(c);
  const victim = [...c.masters.keys()].find((id) => id !== leader)!;
  const child = c.masters.get(victim)!;
  child.pause();
  const t0 = performance.now();
  const lost: number[] = [];
  const why = new Set<string>();
  let sent = 0;
  while (performance.now() - t0 < 10_000) {
    const at = performance.now() - t0;
    sent++;
    const { end } = await plainAdd(nc, `hung-${runId}-${tag}-${sent}`, 1000);
    if (end === 'ok') continue;
    lost.push(Math.round(at));
    why.add(end);
  }
  const ended = !child.running;
  child.resume();
  const count = (from: number, to: number) => lost.filter((ms) => ms >= from && ms < to).length;
  return [label, sent, count(0, 4000), count(4000, 8000), count(8000, Infinity), `${JSON.stringify(lost.slice(0, 8))}${lost.length > 8 ? '…' : ''} ${[...why].join(' ')}`, ended ? 'yes' : 'no'];
}

/** typedFailover: one typed client's adds, one after another, through a leader SIGKILL. */
async function typedFailover(c: LocalCluster, runs: number): Promise<string> {
  const client = await GafferClient.connect(c.natsUrl, { timeoutMs: 5000 });
  const all: number[] = [];
  const rows: Array<Array<string | number>> = [];
  try {
    for (let run = 0; run < runs; run++) {
      const leader = await threeMasters(c);
      await sleep(1000);
      const lat: number[] = [];
      let killedAt = NaN;
      let failed = 0;
      const t0 = performance.now();
      const kill = sleep(1000).then(() => {
        killedAt = performance.now();
        c.masters.get(leader)!.signal('SIGKILL');
      });
      for (let i = 0; performance.now() - t0 < 5000; i++) {
        const s = performance.now();
        try {
          await client.add(`typed-${runId}-${run}-${i}`);
          lat.push(performance.now() - s);
        } catch {
          failed++;
        }
      }
      await kill;
      await c.masters.get(leader)!.exited();
      all.push(...lat);
      const sorted = [...lat].sort((a, b) => a - b);
      rows.push([run + 1, leader, lat.length, failed, Math.round(percentile(sorted, 0.99)), Math.round(sorted[sorted.length - 1] ?? NaN), Math.round(killedAt - t0)]);
    }
  } finally {
    await client.close();
  }
  const sorted = all.sort((a, b) => a - b);
  rows.push(['all', '', sorted.length, rows.reduce((n, r) => n + Number(r[3]), 0), Math.round(percentile(sorted, 0.99)), Math.round(sorted[sorted.length - 1] ?? NaN), '']);
  return table(['run', 'killed', 'adds', 'failed', 'p99 ms', 'max ms', 'kill at ms'], rows, { align: numbersRight(7), rule: true });
}

/** stalls reads the longest loop stall and GC pause each process logged. */
function stalls(c: LocalCluster): string {
  const rows: Array<Array<string | number>> = [];
  for (const id of [...c.masters.keys(), ...c.workers.keys()]) {
    let text = '';
    try {
      text = readFileSync(join(c.dir, `${id}.log`), 'utf8');
    } catch {
      continue;
    }
    const longest = (msg: string) => {
      const ms = text.split('\n').filter((l) => l.includes(`"msg":"${msg}"`)).map((l) => Number(/"ms":(\d+)/.exec(l)?.[1] ?? NaN));
      return { n: ms.length, max: ms.length ? Math.max(...ms) : 0 };
    };
    const loop = longest(StallLog.loop);
    const gc = longest(StallLog.gc);
    rows.push([id, loop.n, loop.max, gc.n, gc.max]);
  }
  return table(['process', 'loop stalls > 500 ms', 'longest ms', 'gc pauses > 100 ms', 'longest ms'], rows, { align: numbersRight(5), rule: true });
}

async function main(): Promise<void> {
  const runs = Number(process.env.BURST_FAILOVER_RUNS ?? 5);
  const c = await LocalCluster.start({ masters: 3, workers: 3, ttlSeconds: 2, watchdogMs: DEV_WATCHDOG_MS });
  const nc = await connect({ servers: c.natsUrl });
  try {
    await c.ready(3);
    console.log(`burst: 3 masters, 3 workers, TTL 2 s, --watchdog-ms ${DEV_WATCHDOG_MS}; a raw nats.js client, no retries\n`);
    console.log(await burstTable(nc), '\n');
    await sleep(3000);
    const idle = await hung(c, nc, 'idle', 'right after 3 s idle');
    await threeMasters(c);
    const b = await burst(nc, 1000, `pre-hung-${runId}`);
    const afterBurst = await hung(c, nc, 'burst', `right after a burst of 1000 (${b.ok} ok)`);
    console.log('one of three masters SIGSTOPped; a plain client, one add after another, 1 s timeouts, for 10 s');
    console.log(table(['when', 'sent', 'lost 0-4 s', 'lost 4-8 s', 'lost after 8 s', 'lost at (ms), how', 'ended by its watchdog'], [idle, afterBurst], { align: ['left', 'right', 'right', 'right', 'right', 'left', 'left'], rule: true }), '\n');
    console.log('a typed client (GafferClient), one add after another, through a leader SIGKILL 1 s into a 5 s run');
    console.log(await typedFailover(c, runs), '\n');
    console.log(stalls(c));
  } finally {
    await nc.close().catch(() => undefined);
    await c.stop(process.env.GAFFER_KEEP_LOGS === '1');
  }
}

await main();
