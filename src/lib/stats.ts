// Summaries of samples: the one median and percentile.

/** median of the finite values; undefined when there are none. */
export function median(xs: readonly number[]): number | undefined {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** percentile picks the nearest-rank value (q in 0..1) of an ascending array; NaN when empty. */
export function percentile(sorted: Float64Array | readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}
