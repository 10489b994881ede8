// The chaos run, short: 10 faults (one of each kind) against a 3-master,
// 4-worker cluster on a 3-member etcd and a 3-node NATS cluster while a
// client adds and deletes. It
// must stop by itself, exit 0 and write a well-formed results.json with zero
// violations. Set CHAOS_SEED to replay a failing run (the seed is printed).
// Sharded crawls are left out here (CHAOS_SHARDED_CRAWLS=0); `npm run chaos`
// judges them. Their receipts survive what nats-server 2.9.10 does to a
// clustered queue stream whose nodes are killed (README: receipts), but in
// 3 of 10 NATS-heavy runs with them a NATS node stayed unhealthy (JetStream
// not current) after a restart, which this smoke would count as an
// unrecovered fault.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runScript } from '../harness.js';

const RUN = fileURLToPath(new URL('../../chaos/run.js', import.meta.url));
const DEADLINE_MS = 240_000;
const FAULTS = 10;

const KINDS = [
  'kill-leader', 'kill-follower', 'kill-worker', 'pause-leader', 'pause-follower', 'pause-worker',
  'restart-nats', 'restart-etcd', 'drain-worker', 'kill-nats',
];

test(`chaos: ${FAULTS} faults, every acknowledged write kept, nothing lost, resurrected, orphaned or run twice`, { timeout: DEADLINE_MS + 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gaffer-chaos-test-'));
  try {
    const out = join(dir, 'results.json');
    const { code, signal, output } = await runScript(RUN, { CHAOS_QUICK: '1', CHAOS_FAULTS: String(FAULTS), CHAOS_NATS_NODES: '3', CHAOS_SHARDED_CRAWLS: '0', CHAOS_OUT: out }, DEADLINE_MS);
    // The seed (to replay) and the kept logs' directory come first: the report after them can be long.
    const lines = output.split('\n');
    const seed = lines.find((l) => l.includes('replay with CHAOS_SEED')) ?? '(no seed line)';
    const kept = lines.find((l) => l.includes('logs kept in')) ?? '';
    const tail = `${seed}\n${kept}\n...\n${output.slice(-6000)}`;
    assert.equal(signal, null, `chaos was killed by ${signal}:\n${tail}`);
    assert.equal(code, 0, `chaos exited ${code}:\n${tail}`);
    const r = JSON.parse(readFileSync(out, 'utf8')) as Record<string, any>;

    assert.equal(r.meta.quick, true);
    assert.equal(r.meta.config.cluster.natsNodes, 3);
    assert.ok(Number.isInteger(r.meta.seed), 'the seed is recorded');
    assert.equal(r.meta.stoppedEarly, null);
    assert.equal(r.faults.length, FAULTS, 'every fault injected');
    assert.deepEqual([...r.faults.map((f: { kind: string }) => f.kind)].sort(), [...KINDS].sort(), 'one fault of each kind');
    for (const f of r.faults) {
      assert.ok(!f.error, `fault #${f.n} ${f.kind}: ${f.error}`);
      assert.ok(typeof f.recoverMs === 'number' && f.recoverMs >= 0, `fault #${f.n} ${f.kind} recovered`);
    }
    for (const k of KINDS) {
      assert.equal(r.byKind[k].count, 1, `${k} counted`);
      assert.ok(typeof r.byKind[k].recoverMedianMs === 'number', `${k} has a recovery time`);
    }
    assert.ok(r.requests.acknowledged > 0, 'the client got answers');
    assert.equal(r.requests.total, r.ops.length);
    assert.ok(r.checked.taskLines > 0, 'worker task logs were read');
    assert.equal(r.final.converged, true, `final state converged: ${r.final.why}`);
    assert.ok(r.crawls.started > 0 && r.crawls.pagesChecked > 0, 'crawls ran under chaos and were checked');
    assert.ok(Array.isArray(r.violations.shardedCrawls), 'violations.shardedCrawls is a list');
    for (const k of ['lost', 'resurrected', 'reanswered', 'orphaned', 'overlaps', 'unrecovered', 'results']) {
      assert.ok(Array.isArray(r.violations[k]), `violations.${k} is a list`);
      assert.equal(r.summary[k], r.violations[k].length);
    }
    assert.equal(r.summary.total, 0, `violations:\n${JSON.stringify(r.violations, null, 1).slice(0, 4000)}`);
    assert.equal(r.summary.longestOverlapMs, 0);
    const summary = output.split('\n').find((l) => l.startsWith('chaos: seed'));
    t.diagnostic(`${summary}; ${r.requests.acknowledged} acknowledged requests, 0 violations`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
