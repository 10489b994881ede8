// Sharded resources in the leader's core (core/shards.ts): N entries placed
// like resources, the resource's state folded from theirs, failure of one
// failing the whole, and termination detection, on plain values and a fake
// clock (each batch's Tick), with reports delivered late and out of order.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Input, Plan } from '#actors/leader/core/batch.js';
import { plan } from '#actors/leader/core/plan.js';
import { ClusterState } from '#actors/leader/core/state.js';
import { loadResource, loadWorker, repair } from '#actors/leader/core/repair.js';
import type { ShardProbe } from '#actors/leader/core/shards.js';
import type { Resource, TaskReport } from '#protocol/messages.js';
import { parseShard, shardId, shardName } from '#protocol/shards.js';
import { validateSpec } from '#protocol/validate.js';
import { validateReportRequest } from '#protocol/validate-report.js';
import { request } from '../fakes/requests.js';
import { context } from '../fakes/core.js';
import { tick } from '../fakes/tick.js';

type ShardReport = Omit<Extract<TaskReport, { type: 'activity' }>, 'name' | 'id' | 'attempt' | 'type'> & { shard: number };

/** Cluster is a leader core with three workers and one sharded resource, driven batch by batch on a fake clock. */
class Cluster {
  readonly s = new ClusterState();
  now = 0;
  probes: ShardProbe[] = [];
  last!: Plan;
  readonly ran: Array<unknown> = [];
  constructor(readonly name: string, readonly count: number, workers = ['w1', 'w2', 'w3']) {
    for (const w of workers) loadWorker(this.s, w, 10, `L-${w}`, ['noop']);
    this.batch([{ kind: 'client', req: request({ op: 'add', name, spec: { shards: count } }) }]);
    for (let i = 0; i < count; i++) this.report(i, { type: 'started' });
  }
  batch(inputs: Input[]): Plan {
    this.now += 100;
    this.last = plan(this.s, inputs, context({ ...tick(this.now) }));
    this.probes.push(...this.last.shardProbes);
    return this.last;
  }
  shard(i: number) {
    return this.s.resources.get(shardName(this.name, i))!;
  }
  report(i: number, r: { type: 'started' } | { type: 'completed'; result?: unknown } | { type: 'failed'; error: string } | { type: 'activity'; seq: number; idle: boolean }, attempt?: number): Plan {
    const e = this.shard(i);
    // After the resource completed a late report is still sent, by the attempt that ran.
    const a = e.assign ?? (this.ran[i] as NonNullable<typeof e.assign>);
    this.ran[i] = a;
    const rep = { ...r, name: e.rec.name, id: e.rec.id, attempt: attempt ?? a.attempt } as TaskReport;
    return this.batch([{ kind: 'client', req: request({ op: 'report', worker: a.worker, epoch: a.epoch, reports: [rep] }) }]);
  }
  activity(r: ShardReport, attempt?: number): Plan {
    return this.report(r.shard, { type: 'activity', seq: r.seq, idle: r.idle }, attempt);
  }
  answer(p: ShardProbe, queued: number[] | undefined): Plan {
    this.probes = this.probes.filter((x) => x !== p);
    return this.batch([{ kind: 'shard-queues', name: p.name, id: p.id, token: p.token, queued }]);
  }
  get view(): Resource {
    return this.s.view(this.name)!;
  }
}

describe('sharded resources: entries', () => {
  test('spec.shards is a whole number from 1 to 256, not with spec.schedule; shard names and ids read back; workers may report on shards', () => {
    for (const bad of [0, 257, 1.5, '3', null]) assert.throws(() => validateSpec({ shards: bad }), /spec\.shards/);
    assert.deepEqual(validateSpec({ shards: 256 }), { shards: 256 });
    assert.throws(() => validateSpec({ shards: 2, schedule: { every: '1h' } }), /cannot be combined/);
    assert.deepEqual(parseShard(shardName('a.b', 7), shardId('id-1', 7)), { name: 'a.b', index: 7, id: 'id-1' });
    assert.equal(parseShard('a/b/7'), undefined, 'the resource part is a resource name');
    assert.equal(parseShard('a/256'), undefined);
    const r = validateReportRequest({ worker: 'w1', epoch: '1', reports: [{ type: 'activity', name: 'a/1', id: 'x_s1', attempt: 1, seq: 1, idle: true }] });
    assert.equal(r.reports[0]!.name, 'a/1');
    assert.throws(() => validateReportRequest({ worker: 'w1', epoch: '1', reports: [{ type: 'started', name: 'a/1/2', id: 'x', attempt: 1 }] }));
  });

  test('spec.shards adds one entry per shard, each placed on a distinct worker while there are enough; the resource runs nowhere itself', () => {
    const c = new Cluster('crawl', 3);
    const workers = [0, 1, 2].map((i) => c.shard(i).rec.worker);
    assert.deepEqual(new Set(workers).size, 3);
    assert.equal(c.view.worker, null);
    assert.equal(c.view.state, 'running');
    assert.deepEqual(c.view.shards!.map((x) => [x.index, x.state, x.attempt]), [[0, 'running', 1], [1, 'running', 1], [2, 'running', 1]]);
    assert.equal(c.s.pending.size, 0);
  });

  test('a load that finds a sharded resource missing shards (its add spanned transactions) writes and places them', () => {
    const s = new ClusterState();
    for (const w of ['w1', 'w2']) loadWorker(s, w, 10, `L-${w}`, ['noop']);
    loadResource(s, { name: 'big', id: 'id-big', worker: null, spec: { shards: 3 }, createdAt: 'x', state: 'starting', attempt: 1, failures: 0 }, 5, undefined);
    loadResource(s, { name: 'big/0', id: 'id-big_s0', worker: 'w1', spec: { shards: 3 }, createdAt: 'x', state: 'starting', attempt: 1, failures: 0 }, 5, { worker: 'w1', epoch: 'L-w1', attempt: 1 });
    repair(s, []);
    assert.equal(s.pending.has('big'), false, 'the resource itself is never placed');
    const p = plan(s, [{ kind: 'reconcile' }], context());
    const written = p.writes.resources.map((r) => r.name).sort();
    assert.deepEqual(written.filter((n) => n.startsWith('big/')), ['big/1', 'big/2']);
    assert.ok(s.resources.get('big/1')!.rec.worker && s.resources.get('big/2')!.rec.worker);
    assert.equal(s.resources.get('big/2')!.rec.id, 'id-big_s2');
  });

  test('a drain sends a shard where none of its other shards is; a rebalance never puts two on one worker', () => {
    const c = new Cluster('crawl', 2, ['w1', 'w2', 'w3']);
    assert.deepEqual([0, 1].map((i) => c.shard(i).rec.worker), ['w1', 'w2']);
    // Load w3 so that, by load alone, the drained shard would go to its sibling's worker (w2).
    c.s.workers.get('w3')!.labels = { pin: 'yes' };
    for (let k = 0; k < 5; k++) c.batch([{ kind: 'client', req: request({ op: 'add', name: `x${k}`, spec: { constraints: [{ key: 'pin', op: 'exists' }] } }) }]);
    c.batch([{ kind: 'client', req: request({ op: 'drain', worker: 'w1' }) }]);
    assert.equal(c.shard(0).rec.worker, 'w3', 'not onto its sibling while another worker can take it');

    const r = new Cluster('spread', 2, ['w1', 'w2']);
    // Everything else lands on w1 (w2 cordoned meanwhile): a rebalance then moves from w1 to w2, and
    // spread/0 (first by name) must not be what it moves.
    r.batch([{ kind: 'client', req: request({ op: 'cordon', worker: 'w2' }) }]);
    for (let k = 0; k < 6; k++) r.batch([{ kind: 'client', req: request({ op: 'add', name: `y${k}`, spec: {} }) }]);
    r.batch([{ kind: 'client', req: request({ op: 'uncordon', worker: 'w2' }) }]);
    for (let k = 0; k < 5; k++) {
      r.batch([{ kind: 'rebalance', limits: { max: 10, fraction: 1 } }]);
      for (const e of r.s.resources.values()) if (e.handoff) r.batch([{ kind: 'release', name: e.rec.name, attempt: e.handoff.from.attempt }]);
    }
    assert.notEqual(r.shard(0).rec.worker, r.shard(1).rec.worker);
  });

  test('explain says where each shard is', () => {
    const c = new Cluster('crawl', 2);
    const p = c.batch([{ kind: 'client', req: request({ op: 'explain', name: 'crawl' }) }]);
    const reply = p.replies[0]!.build(() => 1) as { ok: true; reason: string };
    assert.match(reply.reason, /^sharded: .*shard 0 on w\d, shard 1 on w\d/);
  });

  test('resource.list shows the resource with its shards, never a shard as a resource, with filters too; the status summary counts it once', () => {
    const c = new Cluster('crawl', 2);
    const page = c.s.page(undefined, 100, 1 << 20);
    assert.deepEqual(page.resources.map((r) => r.name), ['crawl']);
    assert.equal(page.resources[0]!.shards!.length, 2);
    const listed = c.batch([{ kind: 'client', req: request({ op: 'list', state: 'running' }) }]).replies[0]!.build(() => 1) as unknown as { resources: Resource[] };
    assert.deepEqual(listed.resources.map((r) => [r.name, r.shards?.length]), [['crawl', 2]]);
    const status = c.batch([{ kind: 'client', req: request({ op: 'status' }) }]).replies[0]!.build(() => 1) as unknown as { resources?: { total: number } };
    if (status.resources) assert.equal(status.resources.total, 1);
  });

  test('progress: each shard keeps its own, and the resource shows them summed', () => {
    const c = new Cluster('crawl', 2);
    for (const i of [0, 1]) {
      const e = c.shard(i);
      c.batch([{ kind: 'client', req: request({ op: 'report', worker: e.assign!.worker, epoch: e.assign!.epoch, reports: [{ type: 'progress', name: e.rec.name, id: e.rec.id, attempt: 1, progress: { fetched: 10 + i } }] }) }]);
    }
    assert.deepEqual(c.view.progress, { fetched: 21 });
    assert.deepEqual(c.view.shards!.map((x) => x.progress), [{ fetched: 10 }, { fetched: 11 }]);
  });

  test('a shard failed for good fails the resource and stops the others; delete removes every shard', () => {
    const c = new Cluster('crawl', 3);
    // Three failures (the default policy) on shard 1.
    for (let k = 0; k < 3; k++) c.report(1, { type: 'failed', error: 'boom' });
    assert.equal(c.view.state, 'failed');
    assert.match(c.view.error!, /shard 1 failed: boom/);
    for (const i of [0, 2]) {
      assert.equal(c.shard(i).rec.state, 'failed');
      assert.equal(c.shard(i).assign, undefined, 'stopped: its assignment is gone');
    }
    const p = c.batch([{ kind: 'client', req: request({ op: 'delete', name: 'crawl' }) }]);
    assert.equal(c.s.resources.size, 0);
    assert.equal(p.shardDrops.length, 1, 'the shell drops its queues');
  });

  test('a shard that moves (its worker lost) gets a new attempt elsewhere; its old attempt is not heard any more', () => {
    const c = new Cluster('crawl', 3);
    const from = c.shard(0).rec.worker!;
    c.batch([{ kind: 'worker-down', id: from }]);
    assert.notEqual(c.shard(0).rec.worker, from);
    assert.equal(c.shard(0).rec.attempt, 2);
    // Every other shard and the old attempt say idle: the moved shard's new attempt has not, so no probe.
    c.activity({ shard: 1, seq: 1, idle: true });
    c.activity({ shard: 2, seq: 1, idle: true });
    assert.equal(c.probes.length, 0);
  });
});

describe('sharded resources: completion', () => {
  test('the last item in flight between shards when every shard reports idle does not complete the resource', () => {
    const c = new Cluster('crawl', 3);
    // Shard 0 sent an item to shard 2, then went idle; shard 2 reported idle before the item reached it.
    c.activity({ shard: 2, seq: 1, idle: true });
    c.activity({ shard: 1, seq: 1, idle: true });
    c.activity({ shard: 0, seq: 1, idle: true });
    assert.equal(c.probes.length, 1, 'every shard idle: the shell is asked to count the queues');
    c.answer(c.probes[0]!, [0, 0, 1]);
    assert.equal(c.view.state, 'running', 'an item is stored: not complete');
    // Shard 2 takes it (busy), handles and acks it, and is idle again: its busy report arrives after the idle one.
    c.activity({ shard: 2, seq: 3, idle: true });
    c.activity({ shard: 2, seq: 2, idle: false });
    assert.equal(c.probes.length, 1);
    c.answer(c.probes[0]!, [0, 0, 0]);
    assert.equal(c.view.state, 'completed');
    for (let i = 0; i < 3; i++) assert.equal(c.shard(i).assign, undefined, 'every shard is stopped');
    assert.deepEqual(c.last.events.filter((e) => e.kind === 'task.completed').map((e) => e.payload.name), ['crawl']);
  });

  test('a shard attempt started again by the same worker (its lease lapsed and came back) is busy until it says idle, whatever the run before it said', () => {
    const c = new Cluster('crawl', 2);
    c.activity({ shard: 0, seq: 7, idle: true });
    c.activity({ shard: 1, seq: 3, idle: true });
    const p = c.probes.at(-1)!;
    // Shard 1's worker fenced itself and, its lease restored, runs attempt 1 again: not idle yet.
    c.report(1, { type: 'started' });
    c.answer(p, [0, 0]);
    assert.equal(c.view.state, 'running', 'not complete on the earlier run\'s idle report');
    assert.equal(c.view.shards![1]!.idle, false);
    // The new run's reports count from the worker's counter, above the earlier run's.
    c.activity({ shard: 1, seq: 9, idle: false });
    c.activity({ shard: 1, seq: 10, idle: true });
    assert.equal(c.probes.length, 1);
    c.answer(c.probes[0]!, [0, 0]);
    assert.equal(c.view.state, 'completed');
  });

  test('an answer is ignored when any shard reported since the probe was asked for', () => {
    const c = new Cluster('crawl', 2);
    c.activity({ shard: 0, seq: 1, idle: true });
    c.activity({ shard: 1, seq: 1, idle: true });
    const p = c.probes[0]!;
    c.activity({ shard: 1, seq: 2, idle: false });
    c.answer(p, [0, 0]);
    assert.equal(c.view.state, 'running');
  });

  test('an answer that could not count, or from a moved shard, does not complete', () => {
    const c = new Cluster('crawl', 2);
    c.activity({ shard: 0, seq: 1, idle: true });
    c.activity({ shard: 1, seq: 1, idle: true });
    c.answer(c.probes[0]!, undefined);
    assert.equal(c.view.state, 'running');
    assert.equal(c.probes.length, 1, 'asked again');
    c.batch([{ kind: 'worker-down', id: c.shard(0).rec.worker! }]);
    c.answer(c.probes[0]!, [0, 0]);
    assert.equal(c.view.state, 'running');
  });

  test('a shard that returned while items wait for it runs again; completed shards count as idle', () => {
    const c = new Cluster('crawl', 2);
    c.report(0, { type: 'completed', result: { pages: 3 } });
    c.activity({ shard: 1, seq: 1, idle: true });
    c.answer(c.probes[0]!, [2, 0]);
    assert.equal(c.shard(0).rec.state, 'starting');
    assert.equal(c.shard(0).rec.attempt, 2);
    c.report(0, { type: 'started' });
    c.report(0, { type: 'completed', result: { pages: 5 } });
    c.answer(c.probes.at(-1)!, [0, 0]);
    assert.equal(c.view.state, 'completed');
    assert.deepEqual(c.view.result, { shards: [{ pages: 5 }, null] });
  });

  test('restart runs every shard again', () => {
    const c = new Cluster('crawl', 2);
    c.report(0, { type: 'completed' });
    c.report(1, { type: 'completed' });
    c.answer(c.probes.at(-1)!, [0, 0]);
    assert.equal(c.view.state, 'completed');
    c.batch([{ kind: 'client', req: request({ op: 'restart', name: 'crawl' }) }]);
    assert.deepEqual([0, 1].map((i) => c.shard(i).rec.state), ['starting', 'starting']);
    assert.notEqual(c.view.state, 'completed');
  });

  // A simulation of shards following the runtime's rules (shard-io.ts), with
  // every report and probe answer delivered after a random delay, out of
  // order: the resource never completes while an item is stored or held, or
  // a shard is still in its own first work; and once all is quiet it does.
  test('never completes with an item stored, held or about to be sent; completes once quiet (random schedules)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(fc.nat(), { minLength: 50, maxLength: 400 }), (count, choices) => {
        const c = new Cluster('r', count, ['w1', 'w2', 'w3', 'w4']);
        type Item = { to: number; delivered: boolean };
        let stored: Item[] = [];
        const shards = Array.from({ length: count }, () => ({ first: true, held: [] as Item[], seq: 0, own: 2, idle: false }));
        const inbox: Array<() => void> = [];
        let sends = 12;
        let k = 0;
        const pick = (n: number) => choices[k++ % choices.length]! % n;
        const say = (i: number, idle: boolean) => {
          const x = shards[i]!;
          x.idle = idle;
          const r = { shard: i, seq: ++x.seq, idle };
          inbox.push(() => c.activity(r));
        };
        const send = (from: number) => {
          if (sends-- <= 0) return;
          stored.push({ to: pick(count), delivered: false });
          void from;
        };
        const check = () => {
          if (c.view.state !== 'completed') return;
          assert.equal(stored.length, 0, 'an item is stored');
          for (const x of shards) assert.ok(!x.first && x.held.length === 0, 'a shard still works');
        };
        const step = (): boolean => {
          const acts: Array<() => void> = [];
          shards.forEach((x, i) => {
            if (x.first && x.own > 0) acts.push(() => (send(i), x.own--));
            if (x.first && x.own === 0) acts.push(() => ((x.first = false), say(i, true)));
            const next = stored.find((it) => it.to === i && !it.delivered);
            if (!x.first && next) acts.push(() => {
              next.delivered = true;
              x.held.push(next);
              if (x.idle) say(i, false);
            });
            if (x.held.length > 0) acts.push(() => {
              const it = x.held.shift()!;
              if (pick(2) === 0) send(i); // a send caused by the item, stored before its ack
              stored = stored.filter((y) => y !== it);
              if (x.held.length === 0) say(i, true);
            });
          });
          if (inbox.length > 0) acts.push(() => inbox.splice(pick(inbox.length), 1)[0]!());
          if (c.probes.length > 0) acts.push(() => {
            const p = c.probes[pick(c.probes.length)]!;
            // The shell counts now; the answer itself is delivered later.
            const queued = Array.from({ length: count }, (_, j) => stored.filter((it) => it.to === j).length);
            c.probes = c.probes.filter((y) => y !== p);
            inbox.push(() => c.answer(p, queued));
          });
          if (acts.length === 0) return false;
          acts[pick(acts.length)]!();
          check();
          return true;
        };
        for (let n = 0; n < choices.length && step(); n++);
        // Then let it run out: deterministic order, everything delivered.
        for (let n = 0; n < 10_000 && step(); n++);
        assert.equal(c.view.state, 'completed', 'quiet, and not completed');
      }),
      { numRuns: 300 },
    );
  });
});
