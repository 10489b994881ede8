// Plan: the leader's batch planning alone, in this process, at scale. A
// model of `resources` on `workers` workers loses most of them, a few at a
// time, with nowhere to put most of their work, and every batch is timed
// until the leader has nothing left to do. A batch holds the leader's event
// loop (its lease keepalives included), so its longest is what matters.
//
// No etcd or NATS: plan() does no I/O, so this measures gaffer's own code
// (the core and the encoder) and nothing else.

import { performance } from 'node:perf_hooks';
import { plan } from '#actors/leader/core/plan.js';
import type { Input } from '#actors/leader/core/batch.js';
import { ClusterState } from '#actors/leader/core/state.js';
import { loadWorker } from '#actors/leader/core/repair.js';
import { txns } from '#actors/leader/encode.js';
import { tick } from '#test/fakes/tick.js';
import { add } from '#test/fakes/requests.js';
import { median } from '#lib/stats.js';
import type { BenchConfig } from './config.js';

export interface PlanResult {
  resources: number;
  workers: number;
  lost: number;
  /** Workers lost per batch. */
  lostPerBatch: number;
  /** Batches from the first loss until nothing was left to do. */
  batches: number;
  medianMs: number;
  maxMs: number;
  /** Left pending at the end (no room for them). */
  pending: number;
}

/** Workers lost per batch. */
const LOST_PER_BATCH = 8;

export async function planBench(cfg: BenchConfig, log: (s: string) => void): Promise<PlanResult> {
  const resources = cfg.scale.resources;
  const workers = cfg.scale.workers;
  const model = new ClusterState();
  const capacity = Math.ceil((resources / workers) * 1.5);
  for (let i = 0; i < workers; i++) loadWorker(model, `w${i}`, capacity, `L-w${i}`, ['noop']);
  const ctx = { leaderId: 'm1', term: 7, members: ['m1'] };
  let revision = 0;
  let backlog = false;
  const run = (inputs: Input[], now: number): number => {
    const t0 = performance.now();
    const p = plan(model, inputs, { ...ctx, ...tick(now) });
    const written = txns(p, 7, () => ({ put: 'gaffer/dedupe/7/0/0', value: new Uint8Array() }));
    const ms = performance.now() - t0;
    backlog = p.backlog;
    model.committed(written.flatMap((t) => t.names), ++revision);
    return ms;
  };
  for (let n = 0; n < resources; n += 1000) {
    run(Array.from({ length: Math.min(1000, resources - n) }, (_, i): Input => ({ kind: 'client', req: add(`r${n + i}`) })), 0);
  }
  // All but a tenth of the fleet, as a partition might take them.
  const lost = workers - Math.max(1, Math.floor(workers / 10));
  const times: number[] = [];
  let now = 1000;
  for (let i = 0; i < lost; i += LOST_PER_BATCH) {
    const downs = Array.from({ length: Math.min(LOST_PER_BATCH, lost - i) }, (_, k): Input => ({ kind: 'worker-down', id: `w${i + k}`, fencedBy: now + 850 }));
    times.push(run(downs, now));
    now += 50;
  }
  for (let guard = 0; backlog && guard < 10_000; guard++) {
    times.push(run([{ kind: 'reconcile' }], now));
    now += 50;
  }
  const sorted = [...times].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 10) / 10;
  const r: PlanResult = {
    resources,
    workers,
    lost,
    lostPerBatch: LOST_PER_BATCH,
    batches: times.length,
    medianMs: round(median(times) ?? NaN),
    maxMs: round(sorted[sorted.length - 1]!),
    pending: model.pending.size,
  };
  log(`plan: ${lost} of ${workers} workers lost at ${resources} resources: ${r.batches} batches, median ${r.medianMs} ms, longest ${r.maxMs} ms; ${r.pending} left pending`);
  return r;
}
