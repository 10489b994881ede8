// The soak's verdict, pure: a least-squares line through the second half of
// each series, compared with a per-metric slope threshold.
//
// A series is one metric of one process incarnation (a restarted process
// starts a new series: nothing is fitted across a restart). Its fit window is
// the second half of its time span; samples marked `excluded` (taken during a
// fault on that process or within the quiet period after it healed) are
// dropped from the window but still count for where the halfway point falls.
//
// The line goes through the window's floor: the lowest sample of each
// `floorMin`-minute bucket. What a leak raises is the floor; what comes and
// goes rides on top of it (a crawl's worker thread, 30-60 MiB of RSS, and its
// sockets; a burst of requests). floorMin = 0 fits every sample instead.
//
// Not judged ("short"): a window shorter than `minWindowMin` minutes or with
// fewer than `minPoints` fitted points; and, with `minGcs`, a window whose
// points count fewer major GCs than that (points without a count are exempt):
// between two major GCs a Node process's heap, and so its RSS, grows with
// garbage piling up until the next one, a ramp that says nothing about leaks
// (a quiet worker may go five minutes without one).
//
// A judged series fails when its fitted slope (units per minute) is above the
// metric's threshold *and* the growth is steady: the slope is at least `minT`
// standard errors above zero, the standard error allowing for neighbouring
// points being alike (Newey-West over `lagMin`). A slope above the threshold
// that is not is reported as "noise", not as a failure. minT = 0 turns that
// guard off.

import { median } from '#lib/stats.js';

export interface Point {
  /** Minutes since the start of the run. */
  t: number;
  v: number;
  /** Taken within the quiet period after a fault on this process: not fitted. */
  excluded?: boolean;
  /** The process's major GCs so far (for the heap), when known. */
  gcs?: number;
}

export interface Line {
  /** Units per minute. */
  slope: number;
  intercept: number;
  n: number;
  /**
   * Standard error of the slope; null with fewer than 3 points. With lag > 0
   * it is Newey-West's (Bartlett weights over `lag` neighbours), which stays
   * honest when neighbouring samples are alike: a GC sawtooth, a crawl thread
   * alive for several samples.
   */
  stderr: number | null;
}

/** leastSquares fits v = slope * t + intercept; null with fewer than 2 points or no spread in t. Points in time order for lag > 0. */
export function leastSquares(pts: ReadonlyArray<{ t: number; v: number }>, lag = 0): Line | null {
  const n = pts.length;
  if (n < 2) return null;
  let st = 0;
  let sv = 0;
  for (const p of pts) {
    st += p.t;
    sv += p.v;
  }
  const mt = st / n;
  const mv = sv / n;
  let stt = 0;
  let stv = 0;
  for (const p of pts) {
    stt += (p.t - mt) ** 2;
    stv += (p.t - mt) * (p.v - mv);
  }
  if (stt === 0) return null;
  const slope = stv / stt;
  const intercept = mv - slope * mt;
  let stderr: number | null = null;
  if (n >= 3 && lag === 0) {
    let sse = 0;
    for (const p of pts) sse += (p.v - (intercept + slope * p.t)) ** 2;
    stderr = Math.sqrt(sse / (n - 2) / stt);
  } else if (n >= 3) {
    // Newey-West: u_i = x_i * e_i are the slope's score terms; their long-run variance, Bartlett-weighted.
    const u = pts.map((p) => (p.t - mt) * (p.v - (intercept + slope * p.t)));
    let s = 0;
    for (const x of u) s += x * x;
    for (let l = 1; l <= Math.min(lag, n - 1); l++) {
      let c = 0;
      for (let i = l; i < n; i++) c += u[i]! * u[i - l]!;
      s += 2 * (1 - l / (lag + 1)) * c;
    }
    // n / (n - 2): the usual small-sample correction.
    stderr = Math.sqrt(Math.max(0, ((s / (stt * stt)) * n) / (n - 2)));
  }
  return { slope, intercept, n, stderr };
}

/** secondHalf keeps the points at or after the midpoint of the series' time span (points in time order or not). */
export function secondHalf<P extends { t: number }>(pts: readonly P[]): P[] {
  if (pts.length === 0) return [];
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of pts) {
    lo = Math.min(lo, p.t);
    hi = Math.max(hi, p.t);
  }
  const mid = (lo + hi) / 2;
  return pts.filter((p) => p.t >= mid);
}

export interface FitRules {
  /** Fail above this slope (units per minute). */
  threshold: number;
  /** Judge only windows spanning at least this many minutes. */
  minWindowMin: number;
  /** ... and holding at least this many fitted samples. */
  minPoints: number;
  /** A slope above the threshold fails only if it is at least this many standard errors above zero. */
  minT: number;
  /** The standard error allows for points this many minutes apart being alike (Newey-West); 0: plain OLS. */
  lagMin?: number;
  /** Fit each bucket's lowest sample, buckets this many minutes long from the window's start; 0: every sample. */
  floorMin?: number;
  /** Judge only windows holding at least this many major GCs (by the points' `gcs`, where they carry one); 0: no such rule. */
  minGcs?: number;
}

/** floor keeps the lowest point of each `bucketMin`-minute bucket, buckets counted from the first point (points in time order). */
export function floor<P extends { t: number; v: number }>(pts: readonly P[], bucketMin: number): P[] {
  if (bucketMin <= 0 || pts.length === 0) return [...pts];
  const start = pts[0]!.t;
  const out = new Map<number, P>();
  for (const p of pts) {
    const b = Math.floor((p.t - start) / bucketMin + 1e-9);
    const cur = out.get(b);
    if (!cur || p.v < cur.v) out.set(b, p);
  }
  return [...out.entries()].sort((a, b) => a[0] - b[0]).map(([, p]) => p);
}

/** ok: at or under the threshold; fail: above it, steadily; noise: above it, but within minT standard errors of zero; short: not judged. */
export type FitStatus = 'ok' | 'fail' | 'noise' | 'short';

export interface Fit {
  status: FitStatus;
  /** Fitted slope over the window (units per minute); null when there was nothing to fit. */
  slope: number | null;
  intercept: number | null;
  stderr: number | null;
  threshold: number;
  /** Samples in the whole series, in its second half, used (second half less the excluded ones), and points fitted (the floor of those). */
  points: number;
  windowPoints: number;
  used: number;
  fitted: number;
  /** Major GCs within the window, when the points carry them. */
  gcs?: number;
  /** The fitted window, in minutes since the start of the run. */
  from: number | null;
  to: number | null;
  /** slope / stderr (null without a slope or with a perfect fit). */
  tStat: number | null;
  /** For a short window: why it was not judged; for noise: why it did not fail. */
  why?: string;
}

/** judge fits the second half of one series and compares the slope with the rule's threshold. */
export function judge(series: readonly Point[], rules: FitRules): Fit {
  const half = secondHalf(series);
  const used = half.filter((p) => !p.excluded).sort((a, b) => a.t - b.t);
  const pts = floor(used, rules.floorMin ?? 0);
  const line = leastSquares(pts, lagSamples(pts, rules.lagMin ?? 0));
  const from = used.length ? used[0]!.t : null;
  const to = used.length ? used[used.length - 1]!.t : null;
  const counts = used.map((p) => p.gcs).filter((g): g is number => g !== undefined);
  const gcs = counts.length > 0 ? Math.max(...counts) - Math.min(...counts) : undefined;
  const base = {
    slope: line?.slope ?? null,
    intercept: line?.intercept ?? null,
    stderr: line?.stderr ?? null,
    tStat: line && line.stderr ? line.slope / line.stderr : null,
    threshold: rules.threshold,
    points: series.length,
    windowPoints: half.length,
    used: used.length,
    fitted: pts.length,
    ...(gcs !== undefined ? { gcs } : {}),
    from,
    to,
  };
  const span = from !== null && to !== null ? to - from : 0;
  let why: string | undefined;
  if (!line || pts.length < rules.minPoints) why = `${pts.length} points to fit (< ${rules.minPoints})`;
  else if (span < rules.minWindowMin) why = `window ${span.toFixed(2)} min (< ${rules.minWindowMin})`;
  else if (rules.minGcs && gcs !== undefined && gcs < rules.minGcs) {
    why = `${gcs} major GC${gcs === 1 ? '' : 's'} in the window (< ${rules.minGcs}): between two, the heap grows with garbage awaiting collection`;
  }
  if (why !== undefined || !line) return { ...base, status: 'short', why: why ?? 'nothing to fit' };
  if (line.slope <= rules.threshold) return { ...base, status: 'ok' };
  // A perfect line (stderr 0) is as steady as growth gets.
  const steady = line.stderr === null || line.stderr === 0 || line.slope >= rules.minT * line.stderr;
  if (steady) return { ...base, status: 'fail' };
  return { ...base, status: 'noise', why: `t = ${(line.slope / line.stderr!).toFixed(2)} < ${rules.minT}` };
}

/** lagSamples: how many neighbouring samples `lagMin` minutes cover, at the window's median spacing (at least 1 when lagMin > 0). */
export function lagSamples(pts: ReadonlyArray<{ t: number }>, lagMin: number): number {
  if (lagMin <= 0 || pts.length < 3) return 0;
  const spacing = median(pts.slice(1).map((p, i) => p.t - pts[i]!.t))!;
  return spacing > 0 ? Math.max(1, Math.round(lagMin / spacing)) : 1;
}

/** excludedAfter says whether time t falls during one of `faults` ([start, healed] in minutes) or within `quietMin` minutes after it healed. */
export function excludedAfter(t: number, faults: ReadonlyArray<readonly [number, number]>, quietMin: number): boolean {
  return faults.some(([start, end]) => t >= start && t <= end + quietMin);
}

/** worst picks the fit with the highest slope relative to its threshold: a failing one if any, else a judged one, else any with a slope. */
export function worst<F extends Fit>(fits: readonly F[]): F | undefined {
  const score = (f: F): number => {
    const s = f.slope ?? -Infinity;
    return f.threshold > 0 ? s / f.threshold : s;
  };
  const judged = fits.filter((f) => f.status !== 'short' && f.slope !== null);
  const failing = judged.filter((f) => f.status === 'fail');
  if (failing.length > 0) return worstOf(failing, score);
  return worstOf(judged.length > 0 ? judged : fits.filter((f) => f.slope !== null), score);
}

function worstOf<F>(pool: readonly F[], score: (f: F) => number): F | undefined {
  let best: F | undefined;
  for (const f of pool) if (best === undefined || score(f) > score(best)) best = f;
  return best;
}
