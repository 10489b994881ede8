// HostHealth: how each host has been answering, and what follows from it.
// - a 429 or 503 blocks the host (only that host) for its Retry-After, or
//   else for an exponential back-off that grows with throttles in a row;
// - a network error or timeout also backs the host off, and `parkAfter` of
//   them in a row park it: the crawl goes on without that host;
// - any other answer resets both streaks.

import type { Clock } from '#platform/clock.js';
import { backoffMs, parseRetryAfter } from './backoff.js';
import type { Politeness } from './politeness.js';

export interface HealthSettings {
  backoffMs: number;
  backoffMaxMs: number;
  parkAfter: number;
}

interface Streaks {
  throttles: number;
  failures: number;
}

export class HostHealth {
  private readonly hosts = new Map<string, Streaks>();
  private readonly parkedHosts: string[] = [];
  /** Called once when a host is parked. */
  onPark: (host: string) => void = () => {};

  constructor(
    private readonly settings: HealthSettings,
    private readonly politeness: Politeness,
    private readonly clock: Clock,
  ) {}

  /** parked lists parked hosts (host:port) in the order they were parked. */
  get parked(): readonly string[] {
    return this.parkedHosts;
  }

  isParked(host: string): boolean {
    return this.parkedHosts.includes(host);
  }

  private streaks(host: string): Streaks {
    let s = this.hosts.get(host);
    if (!s) {
      s = { throttles: 0, failures: 0 };
      this.hosts.set(host, s);
    }
    return s;
  }

  /** ok records an ordinary answer. */
  ok(host: string): void {
    this.hosts.delete(host);
  }

  /** throttled records a 429/503 and blocks the host; returns the wait in ms. */
  throttled(host: string, retryAfter: string | null): number {
    const s = this.streaks(host);
    s.throttles++;
    s.failures = 0;
    const wait = parseRetryAfter(retryAfter, this.clock.wall()) ?? backoffMs(s.throttles, this.settings.backoffMs, this.settings.backoffMaxMs);
    this.politeness.block(host, this.clock.now() + wait);
    return wait;
  }

  /** failed records a network error or timeout; returns true when that parked the host. */
  failed(host: string): boolean {
    if (this.isParked(host)) return true;
    const s = this.streaks(host);
    s.failures++;
    if (s.failures >= this.settings.parkAfter) {
      this.parkedHosts.push(host);
      this.hosts.delete(host);
      this.onPark(host);
      return true;
    }
    this.politeness.block(host, this.clock.now() + backoffMs(s.failures, this.settings.backoffMs, this.settings.backoffMaxMs));
    return false;
  }

  /** restore marks hosts parked by an earlier attempt (from a checkpoint). */
  restore(hosts: readonly string[]): void {
    for (const h of hosts) if (!this.isParked(h)) this.parkedHosts.push(h);
  }
}
