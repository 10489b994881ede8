// CallPolicy: how the typed client spends a call's time: a short first try, then
// re-sends with the same request id (the leader's dedupe records make that
// exactly once), each long enough to outlast a master's hold. A request sent
// to a master that has just died is never answered; the short try stops
// it costing the whole hold time. Later tries are long so that a request
// held for want of a leader gets its NO_LEADER answer (after parkMs), and a
// slow answer (a leader reloading from a stalled etcd) its typed error,
// rather than the caller a bare TIMEOUT.
//
// Short tries are what could turn overload into a retry storm (a slow
// leader makes them time out, and each re-send adds load), so they are
// rationed per client, the way gRPC throttles retries: every short try
// that times out costs a token, every answered call earns a tenth of one,
// and while half the tokens are gone tries are long from the start. So at
// most about one call in ten re-sends early in steady state, and a client
// whose tries keep timing out falls back to waiting out the hold time.

import { DEFAULTS } from '#platform/config.js';

export const CALL_POLICY = {
  /** The first try's timeout while short tries are allowed: far above an answer's p99.9 under load (tens of ms). */
  firstMs: 500,
  /** A long try outlasts a master's hold, so it is answered NO_LEADER rather than timing out. */
  longMs: DEFAULTS.parkMs + 500,
  /** Most tries one call makes. */
  max: 6,
  /** Backoff between tries (cockatiel's decorrelated jitter): first delay and cap, in ms. */
  backoffMs: { initial: 50, max: 500 },
} as const;

/**
 * tryTimeoutMs: try n, 0 being the first. It is short when the budget
 * allows; every other try is long: the hold time and more, and half the
 * call's deadline when that is longer.
 */
export function tryTimeoutMs(n: number, short: boolean, callMs: number): number {
  if (short && n === 0) return CALL_POLICY.firstMs;
  return Math.max(CALL_POLICY.longMs, Math.floor(callMs / 2));
}

/** RetryBudget rations short tries (gRPC's retry throttling: tokens, a ratio, a threshold at half). */
export class RetryBudget {
  private tokens: number;

  constructor(
    private readonly maxTokens = 10,
    private readonly ratio = 0.1,
  ) {
    this.tokens = maxTokens;
  }

  /** short: whether a call may start with a short try now. */
  get short(): boolean {
    return this.tokens > this.maxTokens / 2;
  }

  /** timedOut: a short try went unanswered. */
  timedOut(): void {
    this.tokens = Math.max(0, this.tokens - 1);
  }

  /** answered: a call got its answer. */
  answered(): void {
    this.tokens = Math.min(this.maxTokens, this.tokens + this.ratio);
  }
}
