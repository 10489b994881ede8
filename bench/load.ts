// Load: a closed-loop load generator (N requests in flight, each worker sends
// its next request when the previous one answers) and the latency summary
// every table cell reports. Bounded by time, by count, or both.

import { performance } from 'node:perf_hooks';
import { percentile } from '#lib/stats.js';

export interface LoadOptions {
  inflight: number;
  /** Measure for this long after the warmup (ms). */
  durationMs?: number;
  /** Stop once this many requests have succeeded. */
  count?: number;
  /** Hard bound on the whole run, warmup included (ms). */
  limitMs?: number;
  /** Requests started before this much time has passed are not measured. */
  warmupMs?: number;
}

/** Cell is one measured run: throughput over the window and latency percentiles of the successful requests. */
export interface Cell {
  inflight: number;
  /** Length of the measured window (ms). */
  windowMs: number;
  /** Successful requests started in the window (the latency sample). */
  ok: number;
  errors: number;
  firstError?: string;
  /** Successful requests per second in the window. */
  throughput: number;
  p50: number;
  p99: number;
  p999: number;
  mean: number;
  max: number;
  /** Successes over the whole run, warmup included (what count mode counts). */
  totalOk: number;
  /** Whether the run hit limitMs before reaching count. */
  timedOut: boolean;
  /** CPU used by each process during the cell (warmup included), in % of one core. */
  cpu?: Record<string, number>;
  /** ms of CPU the gaffer processes (masters and workers) used per success, warmup included on both sides. */
  cpuMsPerOp?: number;
}

import { sleep } from '#platform/clock.js';
export { sleep };

const round = (x: number, d = 3): number => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);

/** summarize turns latencies (ms) into a cell. */
export function summarize(lat: number[], o: { inflight: number; windowMs: number; inWindow: number; errors: number; firstError?: string; totalOk: number; timedOut: boolean }): Cell {
  const s = Float64Array.from(lat).sort();
  let sum = 0;
  for (const x of s) sum += x;
  const cell: Cell = {
    inflight: o.inflight,
    windowMs: round(o.windowMs, 1),
    ok: s.length,
    errors: o.errors,
    throughput: round(o.inWindow / (o.windowMs / 1000), 1),
    p50: round(percentile(s, 0.5)),
    p99: round(percentile(s, 0.99)),
    p999: round(percentile(s, 0.999)),
    mean: round(s.length ? sum / s.length : NaN),
    max: round(s.length ? s[s.length - 1]! : NaN),
    totalOk: o.totalOk,
    timedOut: o.timedOut,
  };
  if (o.firstError !== undefined) cell.firstError = o.firstError;
  return cell;
}

/**
 * runLoad keeps `inflight` requests outstanding. send(i) gets a unique index
 * per request and must throw on failure. After an error a worker pauses 10 ms
 * so a dead cluster is not hammered in a tight loop.
 */
export async function runLoad(opts: LoadOptions, send: (i: number) => Promise<void>): Promise<Cell> {
  const warmup = opts.warmupMs ?? 0;
  const t0 = performance.now();
  const measureFrom = t0 + warmup;
  const end = opts.durationMs !== undefined ? measureFrom + opts.durationMs : Infinity;
  const hardEnd = opts.limitMs !== undefined ? t0 + opts.limitMs : Infinity;
  const stopAt = Math.min(end, hardEnd);
  if (stopAt === Infinity && opts.count === undefined) throw new Error('runLoad needs a duration, a count or a limit');
  const lat: number[] = [];
  let next = 0;
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  let timedOut = false;
  let inWindow = 0;
  // Launched and not failed: what count mode counts (failed requests are replaced by new ones).
  const done = () => opts.count !== undefined && next - errors >= opts.count;
  const worker = async () => {
    for (;;) {
      const now = performance.now();
      if (now >= stopAt) {
        if (now >= hardEnd) timedOut = true;
        return;
      }
      if (done()) return;
      const i = next++;
      const start = performance.now();
      try {
        await send(i);
        ok++;
        const fin = performance.now();
        // Latency: every request started in the window, however late it ends.
        // Throughput: completions inside the window.
        if (start >= measureFrom) lat.push(fin - start);
        if (fin >= measureFrom && fin <= end) inWindow++;
      } catch (err) {
        errors++;
        firstError ??= (err as Error)?.message ?? String(err);
        await sleep(10);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.inflight }, worker));
  const finished = performance.now();
  const windowMs = Math.min(finished, end) - Math.min(measureFrom, finished);
  return summarize(lat, {
    inflight: opts.inflight,
    windowMs: windowMs > 0 ? windowMs : finished - t0,
    inWindow,
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
    totalOk: ok,
    timedOut: timedOut && opts.count !== undefined && ok < opts.count,
  });
}
