// KeptLease is an etcd lease that we keep alive ourselves, so that we know,
// on a monotonic clock, how long the server is certain to keep it. The etcd3
// library's `lost` event can come up to 2×TTL late; this one fires *before*
// the server can expire the lease, which is what self-fencing needs.

import type { Store } from '../ports.js';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { logger, WorkerLog } from '../log.js';

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

export interface LeaseCallbacks {
  /** Keepalives are overdue: the server may expire the lease soon. Stop acting on it now. */
  onFenced(): void;
  /** A keepalive succeeded again after onFenced; the server never expired the lease. */
  onRestored(): void;
  /** The server says the lease is gone. Fires once; the lease is dead for good. */
  onExpired(): void;
}

export class KeptLease {
  /** Clock time until which the lease is certainly alive on the server (minus the margin). */
  private validUntil: number;
  private readonly beats: Timer;
  private fence: Timer | undefined;
  private stopped = false;
  private inflight = false;
  private overdue = false;
  private readonly log = logger().child({ component: 'lease' });

  private constructor(
    private readonly store: Store,
    readonly id: string,
    private readonly timing: LeaseTiming,
    grantedAt: number,
    private readonly cb: LeaseCallbacks,
    private readonly clock: Clock,
  ) {
    this.validUntil = grantedAt + timing.validityMs;
    this.armFence();
    this.beats = clock.every(timing.intervalMs, () => void this.beat());
  }

  /** grant creates a lease and starts keeping it alive. */
  static async grant(store: Store, timing: LeaseTiming, cb: LeaseCallbacks, clock: Clock = systemClock): Promise<KeptLease> {
    const sentAt = clock.now();
    const id = await store.grantLease(timing.ttlSeconds);
    return new KeptLease(store, id, timing, sentAt, cb, clock);
  }

  /** alive says whether the server is certain to still hold this lease. */
  get alive(): boolean {
    return !this.stopped && this.clock.now() < this.validUntil;
  }

  /** deadlineWallClock is the validity deadline as a wall-clock time, for logs. */
  get deadlineWallClock(): number {
    return this.clock.wall() - (this.clock.now() - this.validUntil);
  }

  private async beat(): Promise<void> {
    if (this.stopped || this.inflight) return;
    this.inflight = true;
    const sentAt = this.clock.now();
    try {
      const ttl = await this.store.keepAlive(this.id, Math.max(200, this.timing.intervalMs * 2));
      if (this.stopped) return;
      if (!(ttl > 0)) return this.expire();
      // The deadline passed before this answer came, and the fence timer has
      // not run (after a pause or a blocked event loop, I/O can come first):
      // a holder that asked `alive` meanwhile was told no and may have fenced
      // itself, and it learns it may go on only from onRestored.
      const lapsed = this.clock.now() >= this.validUntil;
      // The server restarted its countdown no earlier than we sent the request.
      this.validUntil = Math.max(this.validUntil, sentAt + Math.min(ttl * 1000, this.timing.validityMs));
      this.armFence();
      if ((this.overdue || lapsed) && this.alive) {
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

  private armFence(): void {
    this.fence?.cancel();
    this.fence = this.clock.after(Math.max(0, this.validUntil - this.clock.now()) + 1, () => {
      if (this.stopped) return;
      if (this.clock.now() < this.validUntil) return this.armFence();
      if (this.overdue) return;
      this.overdue = true;
      this.log.warn({ lease: this.id }, WorkerLog.leaseOverdue);
      this.cb.onFenced();
    });
  }

  private expire(): void {
    if (this.stopped) return;
    this.log.warn({ lease: this.id }, WorkerLog.leaseExpired);
    this.halt();
    this.cb.onExpired();
  }

  private halt(): void {
    this.stopped = true;
    this.beats.cancel();
    this.fence?.cancel();
    this.store.forgetLease(this.id);
  }

  /** revoke stops keeping the lease and deletes it (and every key bound to it) now. */
  async revoke(): Promise<void> {
    this.halt();
    try {
      await this.store.revokeLease(this.id);
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'revoke failed; the lease will expire');
    }
  }

  /** release stops keeping the lease without revoking it; it expires after the TTL. */
  release(): void {
    this.halt();
  }
}
