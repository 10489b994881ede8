// The soak's verdict on synthetic series: least squares, the second-half
// window, the threshold and the steadiness guard, samples excluded after a
// fault, one series per incarnation (a restart in the middle is two series,
// never one line across both), and the config's thresholds from the
// environment. Also the sampling parsers and the plot's basics.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { excludedAfter, floor, judge, lagSamples, leastSquares, secondHalf, worst, type FitRules, type Point } from '#soak/fit.js';
import { analyze, fillRoles, lines, markExcluded, roleChanges, series, type Sample } from '#soak/analyze.js';
import { SOAK_DEFAULT_KINDS, soakConfig } from '#soak/config.js';
import { promLabeled, promValue, subsByName } from '#soak/sample.js';
import { niceTicks, plot } from '#soak/plot.js';
import { Rng } from '#harness/rng.js';

const RULES: FitRules = { threshold: 1, minWindowMin: 3, minPoints: 4, minT: 3, lagMin: 1 };

/** A series sampled every 10 s for `minutes`, value f(t) with t in minutes. */
function make(minutes: number, f: (t: number, i: number) => number, start = 0): Point[] {
  const out: Point[] = [];
  for (let i = 0; start + i / 6 <= start + minutes + 1e-9; i++) out.push({ t: start + i / 6, v: f(start + i / 6, i) });
  return out;
}

const near = (a: number | null, b: number, eps = 1e-9): void => {
  assert.ok(a !== null && Math.abs(a - b) <= eps, `${a} is not within ${eps} of ${b}`);
};

test('leastSquares recovers an exact line, and refuses what cannot be fitted', () => {
  const l = leastSquares([{ t: 0, v: 1 }, { t: 1, v: 3 }, { t: 2, v: 5 }, { t: 3, v: 7 }])!;
  near(l.slope, 2);
  near(l.intercept, 1);
  near(l.stderr, 0);
  assert.equal(l.n, 4);
  assert.equal(leastSquares([{ t: 1, v: 1 }]), null, 'one point');
  assert.equal(leastSquares([{ t: 1, v: 1 }, { t: 1, v: 2 }]), null, 'no spread in time');
  assert.equal(leastSquares([{ t: 0, v: 1 }, { t: 1, v: 2 }])!.stderr, null, 'two points: no error estimate');
});

test('secondHalf keeps the points from the middle of the time span on', () => {
  const pts = make(10, () => 0);
  const half = secondHalf(pts);
  assert.ok(half.every((p) => p.t >= 5));
  assert.equal(half.length, pts.filter((p) => p.t >= 5).length);
  assert.deepEqual(secondHalf([]), []);
});

test('flat: slope 0, ok', () => {
  const f = judge(make(20, () => 80), RULES);
  assert.equal(f.status, 'ok');
  near(f.slope, 0);
  assert.equal(f.threshold, 1);
  near(f.from, 10, 1e-6);
  near(f.to, 20, 1e-6);
});

test('noisy flat: GC-sawtooth-like noise around a level stays ok', () => {
  const rng = new Rng(7);
  // ±15 MiB uniform noise plus a sawtooth of period 40 s, no trend.
  const f = judge(make(30, (_t, i) => 60 + (rng.next() - 0.5) * 30 + (i % 4) * 5), RULES);
  assert.ok(f.status === 'ok' || f.status === 'noise', `status ${f.status}, slope ${f.slope}`);
  assert.notEqual(f.status, 'fail');
  assert.ok(Math.abs(f.slope!) < 1, `slope ${f.slope}`);
});

test('steady growth above the threshold fails; below it passes', () => {
  const rng = new Rng(11);
  const leak = judge(make(30, (t) => 50 + 2 * t + (rng.next() - 0.5) * 2), RULES);
  assert.equal(leak.status, 'fail');
  near(leak.slope, 2, 0.1);
  const slow = judge(make(30, (t) => 50 + 0.5 * t + (rng.next() - 0.5) * 2), RULES);
  assert.equal(slow.status, 'ok');
  near(slow.slope, 0.5, 0.1);
});

test('only the second half counts: warm-up growth that levels off passes, growth that starts late fails', () => {
  // Grows 10 units per minute for 5 minutes, then flat for 15: the second half (10-20) is flat.
  const warm = judge(make(20, (t) => Math.min(t, 5) * 10), RULES);
  assert.equal(warm.status, 'ok');
  near(warm.slope, 0);
  // Flat for 10 minutes, then growing 2 per minute.
  const late = judge(make(20, (t) => Math.max(0, t - 10) * 2), RULES);
  assert.equal(late.status, 'fail');
  near(late.slope, 2, 1e-6);
});

test('a slope above the threshold that noise can explain is "noise", not a failure; minT 0 fails it', () => {
  const rng = new Rng(3);
  // 8 minutes, ±40 units of noise and a true slope of 0: over a 4-minute window the fitted slope swings widely.
  let seen: { pts: Point[]; fit: ReturnType<typeof judge> } | undefined;
  for (let i = 0; i < 200 && !seen; i++) {
    const pts = make(8, () => 100 + (rng.next() - 0.5) * 80);
    const fit = judge(pts, { ...RULES, minWindowMin: 1 });
    if (fit.slope! > RULES.threshold) seen = { pts, fit };
  }
  assert.ok(seen, 'some noisy window has a slope above the threshold');
  assert.equal(seen.fit.status, 'noise');
  assert.ok(seen.fit.tStat! < 3, `t ${seen.fit.tStat}`);
  assert.match(seen.fit.why!, /t = /);
  // With the guard off, the slope alone decides.
  assert.equal(judge(seen.pts, { ...RULES, minWindowMin: 1, minT: 0 }).status, 'fail');
  // A steady line is never noise, however short.
  assert.equal(judge(make(8, (t) => 5 * t), { ...RULES, minWindowMin: 1 }).status, 'fail');
});

test('a GC sawtooth (garbage ramping up between major GCs) over a few cycles is not growth, whatever its phase', () => {
  // 1.3 MiB a minute of garbage, collected every 3 minutes; a 10-minute series, so a 5-minute window.
  for (let phase = 0; phase < 1; phase += 0.0625) {
    const f = judge(make(10, (t) => 18 + 1.3 * 3 * ((t / 3 + phase) % 1)), { ...RULES, threshold: 0.5 });
    assert.equal(f.status, 'ok', `phase ${phase}: slope ${f.slope}`);
  }
});

test('the standard error allows for neighbouring samples being alike (Newey-West)', () => {
  // Slow waves around a flat level: residuals that run in long streaks.
  const pts = make(10, (t) => 50 + 10 * Math.sin(t * 1.3)).filter((p) => p.t >= 5);
  const ols = leastSquares(pts, 0)!;
  const hac = leastSquares(pts, lagSamples(pts, 1))!;
  near(hac.slope, ols.slope);
  assert.ok(hac.stderr! > ols.stderr! * 1.5, `HAC ${hac.stderr} vs OLS ${ols.stderr}`);
  // White noise: about the same either way.
  const rng = new Rng(5);
  const white = make(30, () => 50 + (rng.next() - 0.5) * 10);
  const a = leastSquares(white, 0)!.stderr!;
  const b = leastSquares(white, lagSamples(white, 1))!.stderr!;
  assert.ok(b / a > 0.6 && b / a < 1.5, `${b} vs ${a}`);
  assert.equal(lagSamples(make(2, () => 0), 1), 6, 'a minute of 10-second samples');
  assert.equal(lagSamples(make(2, () => 0), 0), 0);
});

test('the floor: what comes and goes on top of a flat floor is not growth; a rising floor is', () => {
  const rng = new Rng(9);
  // A worker's descriptors: 22 at rest, 30-40 while a crawl runs (now and then, for 20-40 s), crowding the end of the window.
  const busy = (t: number): boolean => (t > 12 && t < 12.5) || (t > 17.5 && t < 18.05) || (t > 18.4 && t < 18.9) || (t > 19.1 && t < 19.7);
  const fds = make(20, (t) => (busy(t) ? 30 + Math.floor(rng.next() * 10) : 22));
  const raw = judge(fds, { ...RULES, threshold: 0.5 });
  assert.ok(raw.slope! > 0.5 && raw.status !== 'ok', `every sample: slope ${raw.slope}, ${raw.status}`);
  const fl = judge(fds, { ...RULES, threshold: 0.5, floorMin: 1 });
  assert.equal(fl.status, 'ok', `floor: slope ${fl.slope}`);
  near(fl.slope, 0);
  assert.equal(fl.fitted, 11, 'one point a minute, 10 to 20');
  assert.ok(fl.used > fl.fitted);
  // One descriptor leaked a minute, under the same crawls: the floor rises with it.
  const leak = make(20, (t) => Math.floor(t) + (busy(t) ? 30 : 22));
  const lf = judge(leak, { ...RULES, threshold: 0.5, floorMin: 1 });
  assert.equal(lf.status, 'fail');
  near(lf.slope, 1, 0.05);
  // floor() itself: the lowest point of each bucket, in order.
  assert.deepEqual(
    floor([{ t: 0, v: 5 }, { t: 0.5, v: 3 }, { t: 1, v: 9 }, { t: 1.9, v: 8 }, { t: 2.2, v: 1 }], 1).map((p) => p.v),
    [3, 8, 1],
  );
  assert.equal(floor([{ t: 0, v: 5 }, { t: 0.5, v: 3 }], 0).length, 2, 'floorMin 0: every sample');
});

test('the heap is judged only over windows holding enough major GCs', () => {
  // Garbage piling up at 1.2 MiB a minute, with one major GC in the last 8 minutes (and nothing collected by it).
  const ramp = make(16, (t) => 17 + 1.2 * t).map((p) => ({ ...p, gcs: p.t < 12 ? 3 : 4 }));
  const r = judge(ramp, { ...RULES, threshold: 0.5, floorMin: 1, minGcs: 2 });
  assert.equal(r.status, 'short');
  assert.equal(r.gcs, 1);
  assert.match(r.why!, /1 major GC in the window/);
  // The same curve with a major GC every 2 minutes, as a leak would show between them, is judged (and fails).
  const counted = make(16, (t) => 17 + 1.2 * t).map((p) => ({ ...p, gcs: Math.floor(p.t / 2) }));
  const c = judge(counted, { ...RULES, threshold: 0.5, floorMin: 1, minGcs: 2 });
  assert.equal(c.status, 'fail');
  assert.equal(c.gcs, 4);
  // Points without a count (a Go process) are exempt from the rule.
  assert.equal(judge(make(16, (t) => 17 + 1.2 * t), { ...RULES, threshold: 0.5, minGcs: 2 }).status, 'fail');
});

test('analyze: a gaffer process\'s heap and RSS carry its major-GC count, its descriptors do not', () => {
  const s = samples(20, null, () => 80).map((x) => ({ ...x, extra: { majorGcs: 5 } }));
  const { series: ser, fits } = analyze(s, {
    thresholds: { rss: 1, heap: 0.5, fds: 0.5, subs: 0.5 }, minWindowMin: 3, minPoints: 4, minT: 3, lagMin: 1, floorMin: 1, minMajorGcs: 2,
  });
  assert.ok(ser.find((x) => x.metric === 'heap')!.points.every((p) => p.gcs === 5));
  assert.ok(ser.find((x) => x.metric === 'fds')!.points.every((p) => p.gcs === undefined));
  assert.deepEqual(
    fits.map((f) => [f.metric, f.status]),
    [['rss', 'short'], ['heap', 'short'], ['fds', 'ok'], ['subs', 'ok']],
  );
});

test('short windows are not judged, however steep', () => {
  const f = judge(make(4, (t) => 100 * t), RULES);
  assert.equal(f.status, 'short');
  assert.match(f.why!, /window 2\.00 min/);
  const few = judge([{ t: 0, v: 0 }, { t: 10, v: 100 }, { t: 20, v: 200 }], { ...RULES, minWindowMin: 0 });
  assert.equal(few.status, 'short');
  assert.match(few.why!, /points to fit/);
});

test('excluded samples leave the fit but still place the halfway point', () => {
  // A spike right after a fault in the second half: excluded, the rest is flat.
  const pts = make(20, () => 40).map((p) => (p.t >= 12 && p.t <= 12.4 ? { ...p, v: 400, excluded: true } : p));
  const f = judge(pts, RULES);
  assert.equal(f.status, 'ok');
  near(f.slope, 0);
  assert.equal(f.windowPoints - f.used, pts.filter((p) => p.excluded).length);
  near(f.from, 10, 1e-6);
});

test('excludedAfter covers the fault itself and the quiet period after it healed', () => {
  const faults: Array<[number, number]> = [[5, 5.1]];
  assert.equal(excludedAfter(4.99, faults, 1 / 3), false);
  assert.equal(excludedAfter(5, faults, 1 / 3), true);
  assert.equal(excludedAfter(5.4, faults, 1 / 3), true);
  assert.equal(excludedAfter(5.45, faults, 1 / 3), false);
});

/** Samples of one process id every 10 s: pid changes at `restartAt` minutes. */
function samples(minutes: number, restartAt: number | null, rss: (t: number, pid: number) => number): Sample[] {
  const out: Sample[] = [];
  for (let i = 0; i / 6 <= minutes + 1e-9; i++) {
    const t = i / 6;
    const pid = restartAt !== null && t >= restartAt ? 200 : 100;
    out.push({ t, id: 'w1', pid, rssMiB: rss(t, pid), heapMiB: 20, fds: 30, subs: 4 });
  }
  return out;
}

test('a restart in the middle makes two series, each judged on its own', () => {
  // First incarnation flat at 120 MiB; the restarted one starts at 60 and is flat: a line across both would fall steeply.
  const s = samples(30, 15, (_t, pid) => (pid === 100 ? 120 : 60));
  const ser = series(s, 'rss');
  assert.deepEqual(ser.map((x) => x.key), ['w1#100', 'w1#200']);
  const { fits } = analyze(s, { thresholds: { rss: 1, heap: 0.5, fds: 0.5, subs: 0.5 }, minWindowMin: 3, minPoints: 4, minT: 3 });
  const rss = fits.filter((f) => f.metric === 'rss');
  assert.equal(rss.length, 2);
  for (const f of rss) {
    assert.equal(f.status, 'ok', `${f.key}: ${f.slope}`);
    near(f.slope, 0);
  }
  // Each incarnation's window is its own second half.
  near(rss[1]!.from, 22.5, 0.2);
  assert.equal(fits.length, 8, 'four metrics, two incarnations');
});

test('a restart in the middle does not hide a leak in either incarnation', () => {
  // Both incarnations leak 3 MiB a minute from their own start.
  const s = samples(30, 15, (t, pid) => 60 + 3 * (pid === 100 ? t : t - 15));
  const { fits } = analyze(s, { thresholds: { rss: 1, heap: 0.5, fds: 0.5, subs: 0.5 }, minWindowMin: 3, minPoints: 4, minT: 3 });
  const rss = fits.filter((f) => f.metric === 'rss');
  assert.deepEqual(rss.map((f) => f.status), ['fail', 'fail']);
  for (const f of rss) near(f.slope, 3, 1e-6);
  assert.ok(fits.filter((f) => f.metric !== 'rss').every((f) => f.status === 'ok'));
  assert.equal(worst(fits)?.metric, 'rss');
});

test('markExcluded marks a process\'s samples during and after a fault on it, and nobody else\'s', () => {
  const s = [...samples(10, null, () => 1), ...samples(10, null, () => 1).map((x) => ({ ...x, id: 'w2' }))];
  markExcluded(s, [{ ids: ['w1'], from: 4, to: 4.05 }], 20 / 60);
  const w1 = s.filter((x) => x.id === 'w1' && x.excluded).map((x) => Number(x.t.toFixed(2)));
  assert.deepEqual(w1, [4, 4.17, 4.33]);
  assert.equal(s.filter((x) => x.id === 'w2' && x.excluded).length, 0);
});

/** A master's samples every 10 s for `minutes`: leader in [from, to), follower otherwise; heap 40 leading, 18 following. */
function master(minutes: number, terms: Array<[number, number]>, heap: (t: number, leading: boolean) => number = (_t, leading) => (leading ? 40 : 18)): Sample[] {
  const out: Sample[] = [];
  for (let i = 0; i / 6 <= minutes + 1e-9; i++) {
    const t = i / 6;
    const leading = terms.some(([a, b]) => t >= a && t < b);
    out.push({ t, id: 'm1', pid: 7, rssMiB: leading ? 120 : 80, heapMiB: heap(t, leading), fds: 24, subs: leading ? 23 : 22, role: leading ? 'leader' : 'follower' });
  }
  return out;
}

test('a master\'s leader and follower samples are separate series: elections inside the window are not growth', () => {
  // Follower, then leader from minute 20 on: one line through both would climb 22 MiB in the second half.
  const s = master(30, [[20, 31]]);
  markExcluded(s, roleChanges(s), 20 / 60);
  const { fits } = analyze(s, { thresholds: { rss: 1, heap: 0.5, fds: 0.5, subs: 0.5 }, minWindowMin: 3, minPoints: 4, minT: 3 });
  const heap = fits.filter((f) => f.metric === 'heap');
  assert.deepEqual(heap.map((f) => f.key).sort(), ['m1#7/follower', 'm1#7/leader']);
  assert.ok(fits.every((f) => f.status === 'ok'), JSON.stringify(fits.map((f) => [f.key, f.metric, f.slope, f.status])));
  // The plot still draws one line per incarnation.
  assert.equal(lines(s, 'heap').length, 1);
  // Leadership back and forth: each role's level is flat, so each series is.
  const flip = master(30, [[2, 6], [12, 14], [19, 23], [27, 31]]);
  const flips = analyze(flip, { thresholds: { rss: 1, heap: 0.5, fds: 0.5, subs: 0.5 }, minWindowMin: 3, minPoints: 4, minT: 3 }).fits;
  assert.ok(flips.every((f) => f.status === 'ok' && Math.abs(f.slope!) < 1e-9), JSON.stringify(flips.map((f) => [f.key, f.metric, f.slope])));
});

test('a leak in a leader shows in its leader series, across terms', () => {
  // Leading in three terms; the leader's heap grows 1 MiB a minute of wall time.
  const s = master(30, [[0, 8], [14, 20], [24, 31]], (t, leading) => (leading ? 30 + t : 18));
  const { fits } = analyze(s, { thresholds: { rss: 1, heap: 0.5, fds: 0.5, subs: 0.5 }, minWindowMin: 3, minPoints: 4, minT: 3 });
  const leader = fits.find((f) => f.metric === 'heap' && f.key === 'm1#7/leader')!;
  assert.equal(leader.status, 'fail');
  near(leader.slope, 1, 1e-6);
});

test('roleChanges and fillRoles: a change is an event on that master; unknown roles take the known ones around them', () => {
  const s = master(3, [[1, 2]]);
  const changes = roleChanges(s);
  assert.equal(changes.length, 2);
  assert.ok(changes.every((c) => c.ids.length === 1 && c.ids[0] === 'm1'));
  near(changes[0]!.to, 1, 1e-9);
  near(changes[1]!.to, 2, 1e-9);
  const holes: Sample[] = master(2, [[0, 3]]).map((x, i) => (i === 0 || i === 5 ? { ...x, role: undefined } : x));
  for (const h of holes) if (h.role === undefined) delete h.role;
  fillRoles(holes, (id) => id.startsWith('m'));
  assert.ok(holes.every((h) => h.role === 'leader'));
  const worker: Sample = { t: 0, id: 'w1', pid: 1, rssMiB: 1, heapMiB: 1, fds: 1, subs: 1 };
  fillRoles([worker], (id) => id.startsWith('m'));
  assert.equal(worker.role, undefined);
});

test('a worker\'s samples taken while a crawl ran there leave its RSS and descriptor fits, not its heap or subscriptions', () => {
  // At rest: 88 MiB and 22 descriptors; crawling (the last two minutes, and now and then): 120 MiB and 32.
  const s = samples(20, null, () => 0).map((x) => {
    const busy = x.t > 18 || (x.t > 12 && x.t < 12.4);
    return { ...x, rssMiB: busy ? 120 : 88, fds: busy ? 32 : 22, heapMiB: 20, subs: 4, ...(busy ? { busy: true } : {}) };
  });
  const rules = { thresholds: { rss: 1, heap: 0.5, fds: 0.5, subs: 0.5 }, minWindowMin: 3, minPoints: 4, minT: 3, lagMin: 1, floorMin: 1 };
  const { series: ser, fits } = analyze(s, rules);
  for (const m of ['rss', 'fds'] as const) {
    const f = fits.find((x) => x.metric === m)!;
    assert.equal(f.status, 'ok', `${m}: ${f.slope}`);
    near(f.slope, 0);
    assert.equal(ser.find((x) => x.metric === m)!.points.filter((p) => p.excluded).length, s.filter((x) => x.busy).length);
  }
  assert.ok(ser.find((x) => x.metric === 'heap')!.points.every((p) => !p.excluded));
  // Without the marks the last two minutes lift the floor: the RSS slope is over its threshold.
  const unmarked = analyze(s.map(({ busy: _b, ...x }) => x), rules).fits.find((x) => x.metric === 'rss')!;
  assert.ok(unmarked.slope! > 1 && unmarked.status !== 'ok', `${unmarked.slope} ${unmarked.status}`);
});

test('missing values leave holes, not zeros', () => {
  const s = samples(5, null, () => 10).map((x, i) => ({ ...x, heapMiB: i % 2 ? null : 20 }));
  const heap = series(s, 'heap')[0]!;
  assert.equal(heap.points.length, Math.ceil(s.length / 2));
});

test('soakConfig: defaults, env thresholds, seconds win over minutes, bad values refused', () => {
  const d = soakConfig({ SOAK_SEED: '1' });
  assert.equal(d.durationMs, 10 * 60_000);
  assert.equal(d.sampleMs, 10_000);
  assert.equal(d.faultEveryMs, 30_000);
  assert.equal(d.quietMs, 20_000);
  assert.deepEqual(d.thresholds, { rss: 1, heap: 0.5, fds: 0.5, subs: 0.5 });
  assert.deepEqual(d.kinds, [...SOAK_DEFAULT_KINDS]);
  assert.deepEqual(d.witnesses, ['m1', 'w1']);
  assert.deepEqual(soakConfig({ SOAK_SEED: '1', SOAK_WITNESSES: '' }).witnesses, []);
  assert.deepEqual(soakConfig({ SOAK_SEED: '1', SOAK_WITNESSES: 'm2, w3' }).witnesses, ['m2', 'w3']);
  const c = soakConfig({
    SOAK_SEED: '1', SOAK_MINUTES: '30', SOAK_SECONDS: '45', SOAK_MAX_RSS_MIB_PER_MIN: '2.5', SOAK_MAX_SUBS_PER_MIN: '-1', SOAK_KINDS: 'kill-worker',
  });
  assert.equal(c.durationMs, 45_000);
  assert.equal(c.thresholds.rss, 2.5);
  assert.equal(c.thresholds.subs, -1);
  assert.deepEqual(c.kinds, ['kill-worker']);
  assert.equal(soakConfig({ SOAK_SEED: '1', SOAK_MINUTES: '0.5' }).durationMs, 30_000);
  assert.throws(() => soakConfig({ SOAK_MAX_HEAP_MIB_PER_MIN: 'lots' }), /SOAK_MAX_HEAP_MIB_PER_MIN/);
  assert.throws(() => soakConfig({ SOAK_KINDS: 'flood' }), /unknown kind/);
});

test('promValue reads one metric from Prometheus text, labels or not, skipping look-alikes', () => {
  const text = [
    '# HELP nodejs_heap_size_used_bytes Process heap size used from Node.js in bytes.',
    '# TYPE nodejs_heap_size_used_bytes gauge',
    'nodejs_heap_size_used_bytes_extra 1',
    'nodejs_heap_size_used_bytes{role="master",id="m1"} 12582912',
    'nodejs_heap_size_total_bytes{role="master",id="m1"} 2',
  ].join('\n');
  assert.equal(promValue(text, 'nodejs_heap_size_used_bytes'), 12582912);
  assert.equal(promValue('up 1 1700000000000\n', 'up'), 1);
  assert.equal(promValue('nothing 1\n', 'up'), null);
  const gc = [
    'nodejs_gc_duration_seconds_count{kind="minor",role="worker",id="w1"} 120',
    'nodejs_gc_duration_seconds_count{kind="major",role="worker",id="w1"} 7',
  ].join('\n');
  assert.equal(promLabeled(gc, 'nodejs_gc_duration_seconds_count', 'kind', 'major'), 7);
  assert.equal(promLabeled(gc, 'nodejs_gc_duration_seconds_count', 'kind', 'incremental'), null);
});

test('subsByName adds up the subscriptions of connections with the same name', () => {
  const m = subsByName([
    { name: 'gaffer-master-m1', subs: 20, subjects: [] },
    { name: 'gaffer-master-m1', subs: 2, subjects: [] },
    { name: 'gaffer-worker-w1', subs: 4, subjects: [] },
  ]);
  assert.equal(m.get('gaffer-master-m1'), 22);
  assert.equal(m.get('gaffer-worker-w1'), 4);
});

test('the plot: one chart per metric, one polyline per incarnation, the failing fit in red', () => {
  assert.deepEqual(niceTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
  const s = samples(30, 15, (t, pid) => 60 + 3 * (pid === 100 ? t : t - 15));
  const { series: ser, fits } = analyze(s, { thresholds: { rss: 1, heap: 0.5, fds: 0.5, subs: 0.5 }, minWindowMin: 3, minPoints: 4, minT: 3 });
  const svg = plot({
    title: 'test <run>',
    subtitle: 'x',
    durationMin: 30,
    faults: [{ t: 15, kind: 'kill-worker', target: 'w1' }],
    charts: (['rss', 'heap', 'fds', 'subs'] as const).map((m) => ({
      title: m,
      unit: 'u',
      lines: ser.filter((x) => x.metric === m),
      fits: fits.filter((f) => f.metric === m).map((f) => ({ id: f.id, key: f.key, fit: f })),
    })),
  });
  assert.match(svg, /^<svg /);
  assert.ok(svg.includes('test &lt;run&gt;'), 'text is escaped');
  assert.equal((svg.match(/<polyline /g) ?? []).length, 8, 'two incarnations in each of four charts');
  assert.equal((svg.match(/stroke="#d62728"/g) ?? []).length, 2, 'both leaking rss fits drawn red');
  assert.equal((svg.match(/kill-worker w1/g) ?? []).length, 4, 'the fault is marked on every chart');
});
