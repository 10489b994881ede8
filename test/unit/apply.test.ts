// resource.apply in the leader's core: create / unchanged / updated per item,
// refused items answered alone, prune and dry run, the update rules, the
// dedupe record; and the filters of resource.list. Plain values, no await.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Input } from '#actors/leader/core/batch.js';
import { ClusterState } from '#actors/leader/core/state.js';
import { loadWorker } from '#actors/leader/core/repair.js';
import { sameJson } from '#actors/leader/core/apply.js';
import { filteredPage, summary } from '#actors/leader/core/list-filter.js';
import { MAX_APPLY_ITEMS, MAX_PRUNE, validateApply } from '#protocol/apply.js';
import { matchesFilter, type ListFilter } from '#protocol/list-query.js';
import { decodeOutcomes, encodeOutcomes, type Outcome } from '#protocol/outcomes.js';
import { validateList } from '#protocol/validate.js';
import { BadRequestError } from '#protocol/errors.js';
import { ResourceState, type Json, type Spec } from '#protocol/messages.js';
import { request } from '../fakes/requests.js';
import { context, planned } from '../fakes/core.js';

const ctx = context({ members: ['m1'] });
type Item = { name: string; spec?: Spec };
type Answer = { ok: true; dryRun?: true; results: Array<{ name: string; id?: string; outcome?: string; error?: { code: string } }>; pruned: string[]; prunedMore?: true };

function setup(workers: Array<[string, number, Record<string, string>?]> = [['w1', 100], ['w2', 100]]) {
  const model = new ClusterState();
  for (const [id, cap, labels] of workers) loadWorker(model, id, cap, `L-${id}`, ['noop', 'crawl'], labels ?? {});
  const run = (...inputs: Input[]) => planned(model, inputs, ctx);
  const apply = (body: unknown, id?: string) => {
    const p = run({ kind: 'client', req: request({ op: 'apply', ...validateApply(body) }, id ? { id } : {}) });
    return { ...p, answer: p.replies[0]!.build(() => 9) as unknown as Answer };
  };
  const report = (worker: string, reports: Array<Record<string, unknown>>) =>
    run({ kind: 'client', req: request({ op: 'report', worker, epoch: `L-${worker}`, reports: reports as never }) });
  return { model, run, apply, report };
}

const items = (...names: string[]): Item[] => names.map((name) => ({ name, spec: {} }));
const outcomes = (a: Answer) => a.results.map((r) => r.outcome ?? r.error?.code);

describe('resource.apply: the request', () => {
  test('a bad item is refused alone, in its place; duplicates are refused after the first', () => {
    const r = validateApply({ resources: [{ name: 'a' }, { name: 'b c' }, { name: 'a' }, 7, { name: 'd', spec: [1] }, { name: 'e', extra: 1 }] });
    assert.deepEqual(r.resources.map((i) => ('error' in i ? `${i.name}:${i.error.code}` : i.name)), ['a', 'b c:BAD_REQUEST', 'a:BAD_REQUEST', '#3:BAD_REQUEST', 'd:BAD_REQUEST', 'e:BAD_REQUEST']);
  });

  test('a body that is not an apply is refused whole', () => {
    for (const b of [null, [], {}, { resources: {} }, { resources: [], x: 1 }, { resources: [], prune: {} }, { resources: [], prune: { prefix: '' } },
      { resources: [], prune: { selector: {} } }, { resources: [], prune: { prefix: 'a', selector: { a: 'b' } } }, { resources: [], dryRun: 'yes' },
      { resources: Array.from({ length: MAX_APPLY_ITEMS + 1 }, (_, i) => ({ name: `n${i}` })) }]) {
      assert.throws(() => validateApply(b), BadRequestError, JSON.stringify(b).slice(0, 60));
    }
  });

  test('spec.labels must be label words', () => {
    const r = validateApply({ resources: [{ name: 'a', spec: { labels: { team: 'x' } } }, { name: 'b', spec: { labels: { team: 5 } } }, { name: 'c', spec: { labels: 'x' } }] });
    assert.deepEqual(r.resources.map((i) => 'error' in i), [false, true, true]);
  });
});

describe('resource.apply: the rules', () => {
  test('new items are created, equal ones unchanged, changed ones updated; one bad item fails alone; one batch writes all', () => {
    const s = setup();
    const first = s.apply({ resources: [...items('a', 'b'), { name: 'x y' }, ...items('c')] });
    assert.deepEqual(outcomes(first.answer), ['created', 'created', 'BAD_REQUEST', 'created']);
    assert.deepEqual(first.answer.pruned, []);
    assert.equal(s.model.resources.size, 3);
    assert.ok(first.answer.results.every((r) => r.error || r.id === s.model.resources.get(r.name)!.rec.id));
    // Key order in a spec does not make it different.
    s.apply({ resources: [{ name: 'd', spec: { a: 1, b: [1, { c: 2 }] } }] });
    const again = s.apply({ resources: [{ name: 'a', spec: {} }, { name: 'b', spec: { kind: 'crawl' } }, { name: 'd', spec: { b: [1, { c: 2 }], a: 1 } }] });
    assert.deepEqual(outcomes(again.answer), ['unchanged', 'updated', 'unchanged']);
    assert.deepEqual(s.model.resources.get('b')!.rec.spec, { kind: 'crawl' });
  });

  test('an update of a running resource is its next attempt, held on the same worker until the old attempt stops', () => {
    const s = setup();
    s.apply({ resources: items('a') });
    const e = s.model.resources.get('a')!;
    const worker = e.assign!.worker;
    s.report(worker, [{ type: 'started', name: 'a', id: e.rec.id, attempt: 1 }]);
    assert.equal(e.rec.state, ResourceState.running);
    const p = s.apply({ resources: [{ name: 'a', spec: { v: 2 } }] });
    assert.deepEqual(outcomes(p.answer), ['updated']);
    assert.equal(e.assign!.worker, worker, 'it stays where it fits');
    assert.equal(e.assign!.attempt, 2);
    assert.equal(e.assign!.hold, true, 'the new attempt waits for the old one to stop');
    assert.equal(e.handoff!.from.attempt, 1);
    const stop = s.report(worker, [{ type: 'stopped', name: 'a', id: e.rec.id, attempt: 1 }]);
    assert.equal(e.assign!.hold, undefined);
    assert.ok(stop.txns[0]!.ops.some((op) => 'put' in op && op.put === `gaffer/assign/${worker}/a`), 'the released attempt is written, with the new spec');
  });

  test('an update whose constraints its worker no longer meets moves it, stop-before-start', () => {
    const s = setup([['w1', 100, { zone: 'eu' }], ['w2', 100, { zone: 'us' }]]);
    s.apply({ resources: [{ name: 'a', spec: { constraints: [{ key: 'zone', op: 'in', values: ['eu'] }] } }] });
    const e = s.model.resources.get('a')!;
    assert.equal(e.assign!.worker, 'w1');
    const p = s.apply({ resources: [{ name: 'a', spec: { constraints: [{ key: 'zone', op: 'in', values: ['us'] }] } }] });
    assert.equal(e.assign!.worker, 'w2');
    assert.equal(e.assign!.hold, true);
    assert.equal(e.handoff!.from.worker, 'w1');
    assert.deepEqual(p.events.filter((ev) => ev.kind === 'resource.moved').map((ev) => (ev.payload as { reason: string }).reason), ['update']);
  });

  test('a labels-only change is updated without a new attempt; completed resources keep their state; failures start over', () => {
    const s = setup();
    s.apply({ resources: items('a', 'b') });
    const a = s.model.resources.get('a')!;
    s.apply({ resources: [{ name: 'a', spec: { labels: { team: 't1' } } }] });
    assert.equal(a.assign!.attempt, 1);
    assert.equal(a.assign!.hold, undefined);
    const b = s.model.resources.get('b')!;
    s.report(b.assign!.worker, [{ type: 'completed', name: 'b', id: b.rec.id, attempt: 1 }]);
    assert.equal(b.rec.state, ResourceState.completed);
    s.apply({ resources: [{ name: 'b', spec: { v: 2 } }] });
    assert.equal(b.rec.state, ResourceState.completed);
    assert.deepEqual(b.rec.spec, { v: 2 });
  });

  test('prune deletes what matches and is not named; a dry run answers the same and changes nothing', () => {
    const s = setup();
    s.apply({ resources: [...items('app-a', 'app-b', 'app-c', 'other'), { name: 'lab', spec: { labels: { team: 't' } } }] });
    const dry = s.apply({ resources: items('app-a', 'app-d'), prune: { prefix: 'app-' }, dryRun: true });
    assert.equal(dry.answer.dryRun, true);
    assert.deepEqual(outcomes(dry.answer), ['unchanged', 'created']);
    assert.deepEqual(dry.answer.pruned, ['app-b', 'app-c']);
    assert.equal(s.model.resources.size, 5, 'a dry run changes nothing');
    assert.deepEqual(dry.writes.resources, []);
    const real = s.apply({ resources: items('app-a', 'app-d'), prune: { prefix: 'app-' } });
    assert.deepEqual(real.answer.pruned, dry.answer.pruned);
    assert.deepEqual([...s.model.resources.keys()].sort(), ['app-a', 'app-d', 'lab', 'other']);
    const bySel = s.apply({ resources: [], prune: { selector: { team: 't' } } });
    assert.deepEqual(bySel.answer.pruned, ['lab']);
  });

  test('one apply prunes at most MAX_PRUNE, and says more remain', () => {
    const s = setup([['w1', 5000]]);
    for (let i = 0; i < MAX_PRUNE + 5; i += 1000) s.apply({ resources: items(...Array.from({ length: Math.min(1000, MAX_PRUNE + 5 - i) }, (_, j) => `p${String(i + j).padStart(5, '0')}`)) });
    const first = s.apply({ resources: [], prune: { prefix: 'p' } });
    assert.equal(first.answer.pruned.length, MAX_PRUNE);
    assert.equal(first.answer.prunedMore, true);
    const second = s.apply({ resources: [], prune: { prefix: 'p' } });
    assert.equal(second.answer.pruned.length, 5);
    assert.equal(second.answer.prunedMore, undefined);
  });

  test('a re-sent apply gets its first answer, in the same batch or a later one, and writes nothing again', () => {
    const s = setup();
    const body = { resources: [...items('a'), { name: 'b', spec: { v: 1 } }] };
    const first = s.apply(body, 'req-1');
    s.apply({ resources: [{ name: 'b', spec: { v: 2 } }] });
    const again = s.apply(body, 'req-1');
    assert.deepEqual(again.answer, first.answer);
    assert.deepEqual(again.writes.resources, []);
    assert.deepEqual(s.model.resources.get('b')!.rec.spec, { v: 2 }, 'the copy did not run again');
    const twice = s.run(...[1, 2].map(() => ({ kind: 'client' as const, req: request({ op: 'apply', ...validateApply({ resources: items('c') }) }, { id: 'req-2' }) })));
    assert.deepEqual(twice.replies[0]!.build(() => 1), twice.replies[1]!.build(() => 1));
  });

  test("an apply's outcome commits with the batch's last transaction, however many it spans", () => {
    const s = setup([['w1', 5000]]);
    const p = s.apply({ resources: items(...Array.from({ length: 300 }, (_, i) => `r${i}`)) }, 'big');
    assert.ok(p.txns.length > 1);
    const withRecord = p.txns.map((t, i) => (t.entries.some(([id]) => id === 'big') ? i : -1)).filter((i) => i >= 0);
    assert.deepEqual(withRecord, [p.txns.length - 1]);
  });

  test('the dedupe record of an apply decodes to the same outcome (fast-check)', () => {
    const item = fc.oneof(
      fc.record({ name: fc.string({ minLength: 1, maxLength: 20 }), id: fc.uuid(), outcome: fc.constantFrom('created', 'updated', 'unchanged') as fc.Arbitrary<'created'> }),
      fc.record({ name: fc.string({ maxLength: 20 }), error: fc.record({ code: fc.constant('BAD_REQUEST' as const), message: fc.string() }) }),
    );
    fc.assert(
      fc.property(fc.array(item, { maxLength: 30 }), fc.array(fc.string(), { maxLength: 5 }), fc.boolean(), (results, pruned, more) => {
        // Through JSON: fast-check's records have no prototype, and a decoded record has Object's.
        const o = JSON.parse(JSON.stringify({ op: 'apply', results, pruned, ...(more ? { prunedMore: true } : {}) })) as Outcome;
        assert.deepEqual(decodeOutcomes(encodeOutcomes([['id1', o]])), [['id1', o]]);
      }),
    );
  });

  test('a dry run answers what the apply then does, and leaves the state alone (fast-check)', () => {
    const name = fc.constantFrom('a', 'b', 'c', 'd', 'e');
    const spec = fc.constantFrom<Spec>({}, { v: 1 }, { v: 2 }, { labels: { t: 'x' } });
    const apply = fc.record({ resources: fc.uniqueArray(fc.record({ name, spec }), { selector: (i) => i.name, maxLength: 5 }), prune: fc.option(fc.constant({ prefix: 'a' }), { nil: undefined }) });
    fc.assert(
      fc.property(fc.array(apply, { maxLength: 3 }), apply, (before, body) => {
        const s = setup();
        for (const b of before) s.apply(JSON.parse(JSON.stringify(b)));
        const snapshot = [...s.model.resources].map(([n, e]) => [n, e.rec.spec, e.rec.attempt]);
        const dry = s.apply(JSON.parse(JSON.stringify({ ...body, dryRun: true })));
        assert.deepEqual([...s.model.resources].map(([n, e]) => [n, e.rec.spec, e.rec.attempt]), snapshot);
        const real = s.apply(JSON.parse(JSON.stringify(body)));
        assert.deepEqual(outcomes(dry.answer), outcomes(real.answer));
        assert.deepEqual(dry.answer.pruned, real.answer.pruned);
        for (const i of body.resources) assert.ok(sameJson(s.model.resources.get(i.name)!.rec.spec, i.spec as Json));
      }),
      { numRuns: 60 },
    );
  });
});

describe('resource.list filters and the status summary', () => {
  function cluster(specs: Array<[string, Spec]>) {
    const s = setup([['w1', 3], ['w2', 3]]);
    s.apply({ resources: specs.map(([name, spec]) => ({ name, spec })) });
    return s.model;
  }

  test('a filter that names a bad value is refused', () => {
    for (const b of [{ state: 'bogus' }, { worker: 'a.b' }, { kind: 'x.y' }, { labels: {} }, { prefix: '' }, { labels: { a: 1 } }]) {
      assert.throws(() => validateList(b), BadRequestError, JSON.stringify(b));
    }
    assert.deepEqual(validateList({ state: 'running', worker: '', prefix: 'a', labels: { t: 'x' }, kind: 'crawl', limit: 3 }), { state: 'running', worker: '', prefix: 'a', labels: { t: 'x' }, kind: 'crawl', limit: 3 });
  });

  test('pages through a filter give exactly the matching resources, in name order, whatever the page size and scan limit (fast-check)', () => {
    const spec = fc.constantFrom<Spec>({}, { kind: 'crawl' }, { labels: { t: 'x' } }, { kind: 'crawl', labels: { t: 'y' } });
    const names = fc.uniqueArray(fc.stringMatching(/^[ab][a-c0-9]{0,3}$/), { maxLength: 12 });
    const filter = fc.record(
      { state: fc.constantFrom('pending', 'starting'), worker: fc.constantFrom('', 'w1', 'w2'), kind: fc.constantFrom('noop', 'crawl'), labels: fc.constantFrom({ t: 'x' }, { t: 'y' }), prefix: fc.constantFrom('a', 'b1', 'c') },
      { requiredKeys: [] },
    ) as fc.Arbitrary<ListFilter>;
    fc.assert(
      fc.property(names, fc.array(spec, { minLength: 12, maxLength: 12 }), filter, fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 6 }), (ns, specs, f, limit, scan) => {
        const m = cluster(ns.map((n, i) => [n, specs[i]!]));
        const want = [...m.resources.values()].filter((e) => matchesFilter(e.rec, f)).map((e) => e.rec.name).sort();
        const got: string[] = [];
        let after: string | undefined;
        for (let guard = 0; guard < 100; guard++) {
          const page = filteredPage(m, { ...f, limit, ...(after ? { after } : {}) }, scan);
          assert.ok(page.resources.length <= limit);
          got.push(...page.resources.map((r) => r.name));
          if (!page.next) break;
          assert.ok(after === undefined || page.next > after, 'every page moves on');
          after = page.next;
        }
        assert.deepEqual(got, want);
      }),
    );
  });

  test('cluster.status counts as of its batch: one count shared within a batch, a new one in the next', () => {
    const s = setup();
    const status = () => ({ kind: 'client' as const, req: request({ op: 'status' }) });
    const total = (p: ReturnType<typeof s.run>, i = 0) => (p.replies[i]!.build(() => 1) as unknown as { resources: { total: number } }).resources.total;
    assert.equal(total(s.run(status())), 0);
    s.apply({ resources: items('a', 'b') });
    const both = s.run(status(), status());
    assert.equal(total(both), 2);
    const counts = both.replies.map((r) => (r.build(() => 1) as unknown as { resources: object }).resources);
    assert.equal(counts[0], counts[1], 'one count for the batch');
  });

  test('the summary counts every resource by state', () => {
    const m = cluster([['a', {}], ['b', {}], ['c', { kind: 'nope' }]]);
    assert.deepEqual(summary(m), { total: 3, byState: { starting: 2, pending: 1 } });
  });
});

describe('sameJson', () => {
  test('is JSON equality with keys in any order (fast-check)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => {
        const canon = (v: unknown): string => JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([p], [q]) => (p < q ? -1 : 1))) : x));
        assert.equal(sameJson(a as Json, b as Json), canon(a) === canon(b));
        assert.equal(sameJson(a as Json, JSON.parse(JSON.stringify(a)) as Json), true);
      }),
    );
  });
});
