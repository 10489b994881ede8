// KeptLease is an etcd lease that we keep alive ourselves, so that we know,
// on a monotonic clock, how long the server is certain to keep it. The etcd3
// library's `lost` event can come up to 2×TTL late; this one fires *before*
// the server can expire the lease, which is what self-fencing needs.

import { performance } from 'node:perf_hooks';
import type { Store } from './store.js';
import { unavailable } from './store.js';
import { logger } from './log.js';

export interface LeaseTiming {
  ttlSeconds: number;
  /**
   * How long after a keepalive was sent we still trust the lease. At most the
   * TTL minus a safety margin; shorter for workers, so that a leader that
   * revokes a silent worker's lease knows when that worker has fenced itself.
   */
  validityMs: number;
  /** Time between keepalives. */
  intervalMs: number;
}

/** leaseTiming: trust the lease until TTL minus a margin after each keepalive (masters). */
export function leaseTiming(ttlSeconds: number): LeaseTiming {
  const ttlMs = ttlSeconds * 1000;
  return { ttlSeconds, validityMs: ttlMs - Math.max(400, ttlMs / 4), intervalMs: Math.max(200, Math.floor(ttlMs / 5)) };
}

/**
 * fencingTiming: workers trust their lease for 40% of the TTL after each
 * keepalive and beat four times in that window. A worker whose keepalives
 * stop therefore stops its tasks within validityMs, which is what lets the
 * leader move work from a worker it revoked after only that long. The price:
 * an etcd stall (or a blocked event loop) longer than that window makes
 * workers stop and later restart their tasks, though nothing moves unless
 * their leases expire. (30% made fence storms under load on 2 cores.)
 */
export function fencingTiming(ttlSeconds: number): LeaseTiming {
  const validityMs = Math.max(600, ttlSeconds * 400);
  return { ttlSeconds, validityMs, intervalMs: Math.floor(validityMs / 4) };
}

type KeepaliveStream = Awaited<ReturnType<Store['client']['leaseClient']['leaseKeepAlive']>>;

export interface LeaseCallbacks {
  /** Keepalives are overdue: the server may expire the lease soon. Stop acting on it now. */
  onFenced(): void;
  /** A keepalive succeeded again after onFenced; the server never expired the lease. */
  onRestored(): void;
  /** The server says the lease is gone. Fires once; the lease is dead for good. */
  onExpired(): void;
}

export class KeptLease {
  /** Monotonic ms until which the lease is certainly alive on the server (minus the margin). */
  private validUntil: number;
  private timer: NodeJS.Timeout | undefined;
  private fence: NodeJS.Timeout | undefined;
  private stopped = false;
  private inflight = false;
  private overdue = false;
  private stream: KeepaliveStream | undefined;
  private waiter: { resolve(r: { TTL: string }): void; reject(e: Error): void } | undefined;
  private readonly log = logger().child({ component: 'lease' });

  private constructor(
    private readonly store: Store,
    readonly id: string,
    private readonly timing: LeaseTiming,
    grantedAt: number,
    private readonly cb: LeaseCallbacks,
  ) {
    this.validUntil = grantedAt + timing.validityMs;
    this.armFence();
    this.timer = setInterval(() => void this.beat(), timing.intervalMs);
    this.timer.unref();
  }

  /** grant creates a lease and starts keeping it alive. */
  static async grant(store: Store, timing: LeaseTiming, cb: LeaseCallbacks): Promise<KeptLease> {
    const sentAt = performance.now();
    try {
      const res = await store.client.leaseClient.leaseGrant({ TTL: timing.ttlSeconds, ID: 0 });
      return new KeptLease(store, String(res.ID), timing, sentAt, cb);
    } catch (err) {
      throw unavailable(err, 'lease grant');
    }
  }

  /** alive says whether the server is certain to still hold this lease. */
  get alive(): boolean {
    return !this.stopped && performance.now() < this.validUntil;
  }

  /** deadlineWallClock is the validity deadline as a Date.now() time, for logs. */
  get deadlineWallClock(): number {
    return Date.now() - (performance.now() - this.validUntil);
  }

  private async beat(): Promise<void> {
    if (this.stopped || this.inflight) return;
    this.inflight = true;
    const sentAt = performance.now();
    try {
      const res = await this.keepaliveOnce();
      if (this.stopped) return;
      const ttl = Number(res.TTL);
      if (!(ttl > 0)) return this.expire();
      // The server restarted its countdown no earlier than we sent the request.
      this.validUntil = Math.max(this.validUntil, sentAt + Math.min(ttl * 1000, this.timing.validityMs));
      this.armFence();
      if (this.overdue && this.alive) {
        this.overdue = false;
        this.log.info({ lease: this.id }, 'lease keepalive restored');
        this.cb.onRestored();
      }
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'keepalive failed');
    } finally {
      this.inflight = false;
    }
  }

  /**
   * keepaliveOnce sends one keepalive on a stream kept open across beats
   * (one gRPC stream per lease, not one per beat: a thousand workers would
   * otherwise open thousands of streams a second). One beat is in flight at a
   * time, so the next response is ours; a beat that times out drops the
   * stream, so no late answer can be taken for a newer one.
   */
  private async keepaliveOnce(): Promise<{ TTL: string }> {
    const stream = this.stream ?? (this.stream = await this.openStream());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.dropStream();
        reject(new Error('keepalive got no answer in time'));
      }, Math.max(200, this.timing.intervalMs * 2));
      this.waiter = {
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
      stream.write({ ID: this.id });
    });
  }

  private async openStream(): Promise<KeepaliveStream> {
    const stream = await this.store.client.leaseClient.leaseKeepAlive();
    const fail = (err?: Error) => {
      if (this.stream === stream) this.stream = undefined;
      const w = this.waiter;
      this.waiter = undefined;
      w?.reject(err ?? new Error('keepalive stream ended'));
    };
    stream.on('data', (res) => {
      const w = this.waiter;
      this.waiter = undefined;
      w?.resolve(res);
    });
    stream.on('error', fail);
    stream.on('end', () => fail());
    return stream;
  }

  private dropStream(): void {
    const stream = this.stream;
    this.stream = undefined;
    this.waiter = undefined;
    try {
      stream?.cancel();
    } catch {
      // already gone
    }
  }

  private armFence(): void {
    clearTimeout(this.fence);
    this.fence = setTimeout(() => {
      if (this.stopped) return;
      if (performance.now() < this.validUntil) return this.armFence();
      if (this.overdue) return;
      this.overdue = true;
      this.log.warn({ lease: this.id }, 'lease keepalive overdue; fencing');
      this.cb.onFenced();
    }, Math.max(0, this.validUntil - performance.now()) + 1);
    this.fence.unref();
  }

  private expire(): void {
    if (this.stopped) return;
    this.log.warn({ lease: this.id }, 'lease expired on the server');
    this.halt();
    this.cb.onExpired();
  }

  private halt(): void {
    this.stopped = true;
    this.dropStream();
    clearInterval(this.timer);
    clearTimeout(this.fence);
  }

  /** revoke stops keeping the lease and deletes it (and every key bound to it) now. */
  async revoke(): Promise<void> {
    this.halt();
    try {
      await this.store.client.leaseClient.leaseRevoke({ ID: this.id });
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'revoke failed; the lease will expire');
    }
  }

  /** release stops keeping the lease without revoking it; it expires after the TTL. */
  release(): void {
    this.halt();
  }
}
