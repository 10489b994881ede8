// `npm run fuzz`: start a cluster of our own (nats-server, etcd, 3 masters,
// 2 workers), send FUZZ_RUNS generated cases (default 5000) from FUZZ_SEED
// (default: a random seed, printed first so the run can be replayed), judge
// each, check the cluster's invariants afterwards, print a summary, write
// fuzz/results.json, and exit 1 on any failure (2 if the run itself failed).
// The cluster is always stopped; FUZZ_KEEP_LOGS=1 keeps its logs.
//
//   FUZZ_SEED=123 FUZZ_RUNS=500 npm run fuzz
//   FUZZ_MAX_MS=600000   stop sending after this long (default 30 min)
//   FUZZ_TIMEOUT_MS=8000 how long a request may take to be answered
//   FUZZ_TRACE=1         print every case as it is sent

import { LocalCluster } from '#devcluster/cluster.js';
import { numbersRight, table } from '#lib/table.js';
import { envNumber } from '#harness/env.js';
import { commit } from '#harness/git.js';
import { randomSeed } from '#harness/rng.js';
import { elapsedLog, isEntryPoint, repoPath, runMain, writeJson } from '#harness/runner.js';
import { fuzz, type Summary } from './judge.js';

const t0 = Date.now();
const log = elapsedLog('fuzz', t0);

const int = (name: string, fallback: number): number => envNumber(process.env, name, fallback, { whole: true });

/** report prints the summary tables. */
export function report(s: Summary): string {
  const outcomes = Object.entries(s.byOutcome).sort((a, b) => b[1] - a[1]);
  const targets = Object.entries(s.byTarget).sort((a, b) => b[1] - a[1]);
  const byTarget = table(
    ['TARGET', 'MESSAGES', 'OUTCOMES'],
    targets.map(([t, n]) => [t, n, Object.entries(s.byTargetOutcome[t] ?? {}).sort((a, b) => b[1] - a[1]).map(([o, k]) => `${o} ${k}`).join(', ')]),
    { align: ['left', 'right', 'left'], rule: true },
  );
  const byOutcome = table(['OUTCOME', 'MESSAGES'], outcomes, { align: numbersRight(2), rule: true });
  const kinds = new Map<string, number>();
  for (const f of s.failures) kinds.set(f.kind, (kinds.get(f.kind) ?? 0) + 1);
  return [
    `${s.cases} cases (${s.messages} messages) in ${(s.durationMs / 1000).toFixed(1)} s (seed ${s.seed}${s.stoppedEarly ? `; stopped early: ${s.stoppedEarly}` : ''})`,
    '',
    byTarget,
    '',
    byOutcome,
    '',
    ...(s.notes.length ? ['known deviations (reported, not failures):', ...s.notes.map((n) => `  ${n.what}: ${n.count}`), ''] : []),
    `crashes found: ${s.crashes}`,
    `failures: ${s.failures.length}${kinds.size ? ` (${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')})` : ''}`,
    ...s.failures.slice(0, 30).map((f) => `  #${f.caseNo} ${f.target} ${f.kind}: ${f.detail.slice(0, 300)}`),
    ...(s.failures.length > 30 ? [`  … and ${s.failures.length - 30} more in results.json`] : []),
  ].join('\n');
}

async function main(): Promise<number> {
  const seed = int('FUZZ_SEED', randomSeed());
  const runs = int('FUZZ_RUNS', 5000);
  const maxMs = int('FUZZ_MAX_MS', 30 * 60_000);
  const timeoutMs = int('FUZZ_TIMEOUT_MS', 8000);
  // The seed first, so a run that dies can still be replayed.
  process.stdout.write(`fuzz seed ${seed} (replay: FUZZ_SEED=${seed} FUZZ_RUNS=${runs} npm run fuzz)\n`);
  const keep = process.env.FUZZ_KEEP_LOGS === '1';
  const c = await LocalCluster.start({ masters: 3, workers: 2, ttlSeconds: 2 });
  const stop = async (): Promise<void> => {
    await c.stop(keep);
  };
  const onSignal = (sig: string): void => {
    log(`${sig}: stopping the cluster`);
    void stop().finally(() => process.exit(2));
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  let summary: Summary;
  try {
    log(`cluster in ${c.dir}`);
    await c.ready(2, 60_000);
    log(`cluster ready; sending ${runs} cases`);
    summary = await fuzz(c, {
      seed,
      runs,
      maxMs,
      requestTimeoutMs: timeoutMs,
      ...(process.env.FUZZ_TRACE === '1' ? { trace: (l: string) => log(l) } : {}),
      progress: (n) => log(`${n} cases`),
    });
  } finally {
    await stop();
  }
  process.stdout.write(`${report(summary)}\n`);
  const out = repoPath('fuzz', 'results.json');
  writeJson(out, {
    meta: { startedAt: new Date(t0).toISOString(), finishedAt: new Date().toISOString(), commit: commit(), node: process.version, timeoutMs, maxMs, ...(keep ? { logs: c.dir } : {}) },
    ...summary,
    failures: summary.failures.slice(0, 500),
  });
  log(`wrote ${out}`);
  return summary.failures.length > 0 ? 1 : 0;
}

// Run only as the entry point: the quick test imports report() from here. main stops the cluster itself on a signal.
if (isEntryPoint(import.meta.url)) runMain('fuzz', main, { crashCode: 2, exitOnSignal: false });
