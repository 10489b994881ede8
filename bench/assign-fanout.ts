// How many worker.<id>.assign messages an apply would need, one per change
// against one per worker per transaction or per batch, measured on the
// leader's own planning and encoding (no cluster): what decided the assign
// format (docs/scale.md, "What workers hear").
//
//   node dist/bench/assign-fanout.js [applies=20] [items=1000]

import { performance } from 'node:perf_hooks';
import { plan } from '#actors/leader/core/plan.js';
import { ClusterState } from '#actors/leader/core/state.js';
import { loadWorker } from '#actors/leader/core/repair.js';
import { txns } from '#actors/leader/encode.js';
import { validateApply } from '#protocol/apply.js';
import { ContentType } from '#protocol/codec.js';
import { ClientSubject } from '#protocol/subjects.js';

const applies = Number(process.argv[2] ?? 20);
const items = Number(process.argv[3] ?? 1000);
let n = 0;
const tick = { now: 0, wall: new Date(0).toISOString(), newId: () => `id-${++n}`, random: () => 0.5 };

for (const workers of [10, 100, 1000]) {
  const s = new ClusterState();
  for (let i = 0; i < workers; i++) loadWorker(s, `w${i}`, 1_000_000, `L${i}`, ['noop']);
  let changes = 0;
  let perTxn = 0;
  let perBatch = 0;
  let transactions = 0;
  let planMs = 0;
  for (let f = 0; f < applies; f++) {
    const body = { resources: Array.from({ length: items }, (_, j) => ({ name: `m${f}-${j}`, spec: { labels: { file: `f${f}` } } })) };
    const command = { op: 'apply' as const, ...validateApply(body) };
    const req = { subject: ClientSubject.apply, command, type: ContentType.json, data: new Uint8Array(), reply: undefined, id: `r${f}`, receivedAt: 0 };
    const t = performance.now();
    const p = plan(s, [{ kind: 'client', req }], { ...tick, leaderId: 'm1', term: 1, members: ['m1'] });
    const ts = txns(p, 1, () => ({ put: 'dedupe', value: new Uint8Array() }));
    planMs += performance.now() - t;
    transactions += ts.length;
    const batch = new Set<string>();
    for (const x of ts) {
      changes += x.assigns.length;
      perTxn += new Set(x.assigns.map((a) => a.worker)).size;
      for (const a of x.assigns) batch.add(a.worker);
    }
    perBatch += batch.size;
  }
  const r = (x: number) => Math.round((x / changes) * 1000) / 1000;
  process.stdout.write(
    `${workers} workers: ${changes} changes in ${transactions} transactions; messages per change: one per change 1, ` +
      `per worker and transaction ${r(perTxn)}, per worker and batch ${r(perBatch)}; plan+encode ${(planMs / applies).toFixed(1)} ms per apply of ${items}\n`,
  );
}
