// Per-host politeness: at most perHostRps requests to one host in ANY window
// of one second, as the host itself would count them.
//
// A token bucket allows a burst of `rate` right after an idle spell plus the
// refill, i.e. up to twice the limit in some one-second window; this is a
// sliding-window log instead. And because the host counts a request when it
// arrives, not when we decide to send it, a slot is stamped with the time the
// response headers (or an error) came back, which is no earlier than the
// host's arrival time: a new request may start only once the N-th previous
// one to that host completed at least a window ago. That holds whatever the
// network or event-loop delays are, at the cost of a slot held while a
// request is outstanding.

import { performance } from 'node:perf_hooks';

/** Window shape for a rate: N requests per W ms with N integral and W >= 1 s. */
export function windowFor(rps: number): { n: number; ms: number } {
  if (!(rps > 0)) throw new RangeError(`perHostRps must be > 0, got ${rps}`);
  // Below 1/s, one request per 1/rps seconds; above, floor(rps) per second,
  // so no one-second window ever holds more than rps requests.
  if (rps < 1) return { n: 1, ms: 1000 / rps };
  return { n: Math.floor(rps), ms: 1000 };
}

class HostWindow {
  /** Completion times of recent requests, oldest first (a deque: times[head..]). */
  private times: number[] = [];
  private head = 0;
  private pending = 0;
  private waiters = new Set<() => void>();

  constructor(private readonly n: number, private readonly ms: number) {}

  private prune(now: number): void {
    const cutoff = now - this.ms;
    while (this.head < this.times.length && this.times[this.head]! <= cutoff) this.head++;
    if (this.head > 256 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
  }

  get idle(): boolean {
    this.prune(performance.now());
    return this.pending === 0 && this.head === this.times.length && this.waiters.size === 0;
  }

  /** acquire waits for a slot; the returned release() must be called once the request completes or fails. */
  async acquire(signal: AbortSignal): Promise<() => void> {
    for (;;) {
      signal.throwIfAborted();
      const now = performance.now();
      this.prune(now);
      const used = this.pending + (this.times.length - this.head);
      if (used < this.n) {
        this.pending++;
        let released = false;
        return () => {
          if (released) return;
          released = true;
          this.pending--;
          this.times.push(performance.now());
          this.wake();
        };
      }
      // Full: the next chance is when the oldest stamp leaves the window, or
      // when an outstanding request completes (its stamp is then recent, but
      // it may free room if the window held fewer stamps than pending slots).
      const oldest = this.head < this.times.length ? this.times[this.head]! : undefined;
      await this.wait(oldest === undefined ? undefined : oldest + this.ms - now, signal);
    }
  }

  private wake(): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  private wait(ms: number | undefined, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer) clearTimeout(timer);
        this.waiters.delete(done);
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        done();
        reject(signal.reason);
      };
      this.waiters.add(done);
      signal.addEventListener('abort', onAbort, { once: true });
      // +1: timers may fire a fraction of a millisecond early relative to
      // performance.now(); the cap: longer delays would fire at once (a very
      // low perHostRps then just waits in several rounds).
      if (ms !== undefined) timer = setTimeout(done, Math.min(Math.max(0, Math.ceil(ms)) + 1, 2 ** 31 - 1));
    });
  }
}

/** RateLimiter keeps one sliding window per host (host:port, as in URL.host). */
export class RateLimiter {
  private readonly hosts = new Map<string, HostWindow>();
  private readonly n: number;
  private readonly ms: number;
  private pruneAt = 1024;

  constructor(rps: number) {
    ({ n: this.n, ms: this.ms } = windowFor(rps));
  }

  acquire(host: string, signal: AbortSignal): Promise<() => void> {
    let w = this.hosts.get(host);
    if (!w) {
      w = new HostWindow(this.n, this.ms);
      this.hosts.set(host, w);
    }
    // Idle windows of other hosts would otherwise pile up on a wide crawl.
    if (this.hosts.size > this.pruneAt) {
      for (const [h, hw] of this.hosts) if (h !== host && hw.idle) this.hosts.delete(h);
      this.pruneAt = Math.max(1024, 2 * this.hosts.size);
    }
    return w.acquire(signal);
  }
}
