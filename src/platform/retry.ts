// Retries and backoff, the one way: cockatiel policies. Every loop that tries
// again (campaigning, loading a leader's state, a client call, waiting for a
// condition) goes through one of these, with exponential backoff and jitter
// (cockatiel's decorrelated jitter) and timers that never keep the process alive.

import { ConstantBackoff, ExponentialBackoff, handleAll, handleWhen, retry, type IBackoff } from 'cockatiel';

export interface RetryOptions {
  /** First delay and the cap it doubles up to, in ms. */
  initialMs: number;
  maxMs: number;
  /** Stops retrying; the last error is thrown. */
  signal?: AbortSignal;
  /** Most attempts in all (the first included); past it the last error is thrown. Default: no limit. */
  maxAttempts?: number;
  /** Only errors this accepts are retried; others are thrown at once. Default: all. */
  retryable?: (err: unknown) => boolean;
  /** Called before each retry's delay, e.g. to log. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/** withRetry runs fn until it succeeds, it throws something not retryable, or the signal aborts. */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const policy = retry(opts.retryable ? handleWhen((e) => opts.retryable!(e)) : handleAll, {
    backoff: new ExponentialBackoff({ initialDelay: opts.initialMs, maxDelay: opts.maxMs }),
    ...(opts.maxAttempts !== undefined ? { maxAttempts: opts.maxAttempts - 1 } : {}),
  }).dangerouslyUnref();
  const sub = opts.onRetry
    ? policy.onRetry((r) => opts.onRetry!('error' in r ? r.error : undefined, r.attempt, r.delay))
    : undefined;
  try {
    return await policy.execute(({ attempt }) => fn(attempt), opts.signal);
  } finally {
    sub?.dispose();
  }
}

/**
 * Backoff is withRetry's schedule for a retry that is not a loop around one
 * call (a message sent again later): each failure waits longer, up to maxMs,
 * jittered so that a fleet failing together does not retry together; a
 * success starts it again.
 */
export class Backoff {
  private readonly factory: ExponentialBackoff<unknown>;
  private current: IBackoff<unknown> | undefined;

  constructor(
    opts: Pick<RetryOptions, 'initialMs' | 'maxMs'>,
    private readonly random: () => number = Math.random,
  ) {
    this.factory = new ExponentialBackoff({ initialDelay: opts.initialMs, maxDelay: opts.maxMs });
  }

  /** next is how long to wait after one more failure. */
  next(): number {
    this.current = this.current ? this.current.next(undefined) : this.factory.next();
    // Decorrelated jitter stays on the cap once it reaches it: half of each wait is random, so a fleet stays spread there too.
    return this.current.duration * (0.5 + this.random() * 0.5);
  }

  reset(): void {
    this.current = undefined;
  }
}

/**
 * waitFor polls fn every intervalMs until it returns something other than
 * undefined or false, and throws after timeoutMs naming what it waited for
 * (and the last error fn threw, if any).
 */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 15000, intervalMs = 50): Promise<T> {
  const signal = AbortSignal.timeout(timeoutMs);
  let last: unknown;
  const policy = retry(handleAll, { backoff: new ConstantBackoff(intervalMs) }).dangerouslyUnref();
  try {
    return await policy.execute(async () => {
      try {
        const v = await fn();
        if (v !== undefined && v !== false) return v;
      } catch (err) {
        last = err;
      }
      throw new NotYet();
    }, signal);
  } catch {
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
  }
}

class NotYet extends Error {
  override name = 'NotYet';
}
