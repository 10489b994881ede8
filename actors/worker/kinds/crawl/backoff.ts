// How long to leave a host alone after it said "too many requests" (429) or
// "unavailable" (503): what its Retry-After asks for, or else an exponential
// back-off per host, capped.

/** Retry-After values beyond this are clamped: a crawl should not sleep on one host for days. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/** isThrottle says whether a status asks the client to slow down (and the request to be tried again later). */
export const isThrottle = (status: number): boolean => status === 429 || status === 503;

/**
 * parseRetryAfter reads a Retry-After header (RFC 9110 §10.2.3): delay
 * seconds or an HTTP date, relative to `wallNow` (ms since the epoch).
 * Returns the wait in ms (0 for a date in the past), or undefined when the
 * header is missing or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, wallNow: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Math.min(Number(v) * 1000, MAX_RETRY_AFTER_MS);
  // Only the date forms: Date.parse would take "5" or "1.5" as a year.
  if (!/^[A-Za-z]{3,9}, /.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - wallNow), MAX_RETRY_AFTER_MS);
}

/** backoffMs is the wait after the `streak`-th throttle in a row (1-based): base, 2·base, 4·base, … up to cap. */
export function backoffMs(streak: number, baseMs: number, capMs: number): number {
  if (streak < 1) return 0;
  return Math.min(capMs, baseMs * 2 ** Math.min(streak - 1, 52));
}
