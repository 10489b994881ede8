// Per-host politeness, enforced for every request the crawl makes (pages,
// redirect hops, robots.txt, sitemaps). For each host (host:port, as in
// URL.host):
// - at most `n` requests in ANY window of `ms` (perHostRps, or robots.txt's
//   Crawl-delay when stricter: one request per delay);
// - at most `concurrency` requests outstanding (perHostConcurrency);
// - none before a block set by a 429/503 (Retry-After or back-off) runs out.
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
//
// readyAt() and take() let the frontier schedule hosts without waiting
// (Mercator's heap of next-allowed times); acquire() waits, for requests the
// frontier did not schedule (robots.txt, redirect hops, sitemaps).

import type { Clock } from '#platform/clock.js';

/** Window shape for a rate: N requests per W ms with N integral and W >= 1 s. */
export function windowFor(rps: number): { n: number; ms: number } {
  if (!(rps > 0)) throw new RangeError(`perHostRps must be > 0, got ${rps}`);
  // Below 1/s, one request per 1/rps seconds; above, floor(rps) per second,
  // so no one-second window ever holds more than rps requests.
  if (rps < 1) return { n: 1, ms: 1000 / rps };
  return { n: Math.floor(rps), ms: 1000 };
}

/** windowWithDelay is the stricter of the rate's window and one request per `delaySeconds`. */
export function windowWithDelay(rps: number, delaySeconds: number): { n: number; ms: number } {
  const w = windowFor(rps);
  if (!(delaySeconds > 0) || 1 / delaySeconds >= w.n / (w.ms / 1000)) return w;
  return { n: 1, ms: delaySeconds * 1000 };
}

/** Release ends a request's hold on its slot; calling it again does nothing. */
export type Release = () => void;

class HostGate {
  /** Completion times of recent requests, oldest first (a deque: times[head..]). */
  private times: number[] = [];
  private head = 0;
  pending = 0;
  blockedUntil = 0;
  readonly waiters = new Set<() => void>();

  constructor(public n: number, public ms: number, private readonly concurrency: number) {}

  private prune(now: number): void {
    const cutoff = now - this.ms;
    while (this.head < this.times.length && this.times[this.head]! <= cutoff) this.head++;
    if (this.head > 256 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
  }

  idle(now: number): boolean {
    this.prune(now);
    return this.pending === 0 && this.head === this.times.length && this.waiters.size === 0 && this.blockedUntil <= now;
  }

  /** readyAt is the earliest time a request may start; Infinity until an outstanding one completes. */
  readyAt(now: number): number {
    if (this.pending >= this.concurrency) return Infinity;
    this.prune(now);
    const stamps = this.times.length - this.head;
    let at = now;
    if (this.pending + stamps >= this.n) {
      // Room comes when enough stamps leave the window; pending slots stamp later.
      const k = this.pending + stamps - this.n;
      if (k >= stamps) return Infinity;
      at = this.times[this.head + k]! + this.ms;
    }
    return Math.max(at, this.blockedUntil);
  }

  hold(stamp: () => number, onRelease: () => void): Release {
    this.pending++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.pending--;
      this.times.push(stamp());
      onRelease();
    };
  }
}

export interface PolitenessOptions {
  rps: number;
  concurrency: number;
  clock: Clock;
  /**
   * No request to any host before this clock time: a sharded crawl's shard
   * that starts again (moved, restarted) waits one full politeness interval,
   * so its first request and its previous owner's last cannot share a window.
   */
  notBefore?: number;
}

/** Politeness keeps one gate per host and wakes whoever waits on it. */
export class Politeness {
  private readonly hosts = new Map<string, HostGate>();
  private readonly delays = new Map<string, number>();
  private readonly clock: Clock;
  private pruneAt = 1024;
  /** Called whenever a host may have become ready sooner than scheduled (a release). */
  onChange: (host: string) => void = () => {};

  constructor(private readonly opts: PolitenessOptions) {
    windowFor(opts.rps);
    this.clock = opts.clock;
  }

  private gate(host: string): HostGate {
    let g = this.hosts.get(host);
    if (!g) {
      const w = windowWithDelay(this.opts.rps, this.delays.get(host) ?? 0);
      g = new HostGate(w.n, w.ms, this.opts.concurrency);
      g.blockedUntil = this.opts.notBefore ?? 0;
      this.hosts.set(host, g);
      // Idle gates of other hosts would otherwise pile up on a wide crawl.
      if (this.hosts.size > this.pruneAt) {
        const now = this.clock.now();
        for (const [h, hg] of this.hosts) if (h !== host && hg.idle(now) && !this.delays.has(h)) this.hosts.delete(h);
        this.pruneAt = Math.max(1024, 2 * this.hosts.size);
      }
    }
    return g;
  }

  /** setCrawlDelay applies robots.txt's Crawl-delay to a host when it is stricter than perHostRps. */
  setCrawlDelay(host: string, seconds: number): void {
    if (!(seconds > 0)) return;
    this.delays.set(host, seconds);
    const w = windowWithDelay(this.opts.rps, seconds);
    const g = this.gate(host);
    g.n = w.n;
    g.ms = w.ms;
  }

  /** block stops every request to `host` until `until` (clock time), or longer if already blocked longer. */
  block(host: string, until: number): void {
    const g = this.gate(host);
    g.blockedUntil = Math.max(g.blockedUntil, until);
  }

  blockedUntil(host: string): number {
    return this.hosts.get(host)?.blockedUntil ?? 0;
  }

  readyAt(host: string, now = this.clock.now()): number {
    return this.gate(host).readyAt(now);
  }

  /** take holds a slot now if the host is ready, for a request the frontier scheduled. */
  take(host: string): Release | undefined {
    const g = this.gate(host);
    if (g.readyAt(this.clock.now()) > this.clock.now()) return undefined;
    return this.hold(host, g);
  }

  /** acquire waits for a slot; the returned release must be called once the request completes or fails. */
  async acquire(host: string, signal: AbortSignal): Promise<Release> {
    for (;;) {
      signal.throwIfAborted();
      const g = this.gate(host);
      const now = this.clock.now();
      const at = g.readyAt(now);
      if (at <= now) return this.hold(host, g);
      await this.wait(g, at === Infinity ? undefined : at - now, signal);
    }
  }

  /** waitUnblocked waits out a block set after a slot was taken, keeping the slot. */
  async waitUnblocked(host: string, signal: AbortSignal): Promise<void> {
    for (;;) {
      signal.throwIfAborted();
      const g = this.gate(host);
      const now = this.clock.now();
      if (g.blockedUntil <= now) return;
      await this.wait(g, g.blockedUntil - now, signal);
    }
  }

  private hold(host: string, g: HostGate): Release {
    return g.hold(() => this.clock.now(), () => {
      const ws = [...g.waiters];
      g.waiters.clear();
      for (const w of ws) w();
      this.onChange(host);
    });
  }

  private wait(g: HostGate, ms: number | undefined, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: { cancel(): void } | undefined;
      const done = (): void => {
        timer?.cancel();
        g.waiters.delete(done);
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        done();
        reject(signal.reason);
      };
      g.waiters.add(done);
      signal.addEventListener('abort', onAbort, { once: true });
      // +1: timers may fire a fraction of a millisecond early relative to the
      // clock; the cap: longer delays would fire at once (a very low rate
      // then just waits in several rounds).
      if (ms !== undefined) timer = this.clock.after(Math.min(Math.max(0, Math.ceil(ms)) + 1, 2 ** 31 - 1), done);
    });
  }
}
