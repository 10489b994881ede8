// Takeover-build microbench: how long buildCluster (actors/leader/loader.ts)
// takes to turn a warm standby's read into a leader's state, the part of a
// takeover that grows with the cluster.
//   node --max-old-space-size=8000 dist/bench/standby-build.js [resources] [workers] [runs]
// The read is synthetic: every resource running on its worker's current
// incarnation, its assignment key present, as a standby holds them after a
// quiet fill (decoded and indexed before the clock starts, as a standby does
// as events arrive). Prints the median and each run's build time.

import { performance } from 'node:perf_hooks';
import { buildCluster, type ClusterRead } from '#actors/leader/loader.js';
import { ResourceIndex } from '#actors/leader/resource-index.js';
import { keys } from '#protocol/keys.js';
import { packed } from '#protocol/codec.js';
import { logger } from '#platform/log.js';
import { systemClock } from '#platform/clock.js';
import type { KV } from '#platform/ports.js';
import { median } from '#lib/stats.js';

const n = Number(process.argv[2] ?? 1_000_000);
const fleet = Number(process.argv[3] ?? 1000);
const runs = Number(process.argv[4] ?? 3);

function read(): ClusterRead {
  const workers: KV[] = [];
  for (let i = 0; i < fleet; i++) {
    const value = packed.encode({ id: `w${i}`, capacity: 2 * Math.ceil(n / fleet), fenceMs: 1200, kinds: ['noop'] });
    workers.push({ key: keys.worker(`w${i}`), value, lease: `lease-${i}`, modRevision: 1, createRevision: 1 });
  }
  const resources = new ResourceIndex();
  for (let i = 0; i < n; i++) {
    const name = `r-${String(i).padStart(7, '0')}`;
    const worker = `w${i % fleet}`;
    const rec = { name, id: `id-${i}`, worker, spec: { kind: 'noop' }, createdAt: '2026-12-07T00:00:00.000Z', state: 'running' as const, attempt: 1, failures: 0, epoch: `lease-${i % fleet}` };
    resources.putResource({ key: keys.resource(name), value: packed.encode(rec), lease: '0', modRevision: 10 + i, createRevision: 10 + i });
    resources.putAssignment(keys.assignment(worker, name));
  }
  return { revision: n + 10, workers, resources, chain: undefined, cordons: [], fencing: [], dedupe: [], source: 'standby' };
}

const times: number[] = [];
for (let r = 0; r < runs; r++) {
  const input = read();
  const t0 = performance.now();
  const built = await buildCluster(input, logger(), systemClock);
  times.push(Math.round(performance.now() - t0));
  if (built.state.resources.size !== n || built.state.pending.size !== 0) throw new Error(`built ${built.state.resources.size} resources, ${built.state.pending.size} pending`);
}
console.log(JSON.stringify({ resources: n, workers: fleet, buildMs: { median: median(times), runs: times }, usPerResource: +(((median(times) ?? NaN) * 1000) / n).toFixed(2) }));
