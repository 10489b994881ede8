// Prober detects dead peers fast and for certain. It sends a tiny request to
// a subject only the peer subscribes to; NATS answers "no responders" at once
// when no subscription exists, which means the peer's process is gone or its
// NATS connection is. Slow answers and timeouts prove nothing and are
// ignored. Right after our own (re)connect every peer may look absent for a
// moment, so nothing is declared dead until our connection has been stable.

import { ErrorCode as NatsErrorCode, Empty, headers as natsHeaders, type NatsConnection } from 'nats';
import { performance } from 'node:perf_hooks';
import { Header } from './subjects.js';

export interface ProberOptions {
  intervalMs: number;
  /** Consecutive "no responders" answers before a peer is declared dead. */
  misses: number;
  /** How long our own connection must have been up before we believe a miss. */
  stableMs: number;
}

export const DEFAULT_PROBING: ProberOptions = { intervalMs: 100, misses: 2, stableMs: 1000 };

interface Target {
  subject: string;
  misses: number;
  timer: NodeJS.Timeout;
  busy: boolean;
  onDead: () => void;
}

/** pingHeaders marks a probe, so the peer answers it without any work. */
export function pingHeaders() {
  const h = natsHeaders();
  h.set(Header.ping, '1');
  return h;
}

export function isPing(h: { get(k: string): string } | undefined): boolean {
  return h?.get(Header.ping) === '1';
}

export class Prober {
  private readonly targets = new Map<string, Target>();
  private stableSince = performance.now();
  private closed = false;

  constructor(private readonly nc: NatsConnection, private readonly opts: ProberOptions = DEFAULT_PROBING) {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnect') this.stableSince = performance.now();
      }
    })().catch(() => undefined);
  }

  /** watch probes `subject` until unwatched; onDead fires at most once, then probing of that key stops. */
  watch(key: string, subject: string, onDead: () => void, intervalMs = this.opts.intervalMs): void {
    if (this.closed) return;
    this.unwatch(key);
    const t: Target = { subject, misses: 0, busy: false, onDead, timer: setInterval(() => void this.probe(key, t), intervalMs) };
    t.timer.unref();
    this.targets.set(key, t);
  }

  unwatch(key: string): void {
    const t = this.targets.get(key);
    if (t) clearInterval(t.timer);
    this.targets.delete(key);
  }

  has(key: string): boolean {
    return this.targets.has(key);
  }

  private async probe(key: string, t: Target): Promise<void> {
    if (t.busy || this.nc.isClosed()) return;
    t.busy = true;
    try {
      await this.nc.request(t.subject, Empty, { timeout: Math.max(500, this.opts.intervalMs * 5), headers: pingHeaders() });
      t.misses = 0;
    } catch (err) {
      if ((err as { code?: string }).code !== NatsErrorCode.NoResponders) return;
      if (performance.now() - this.stableSince < this.opts.stableMs) return;
      if (++t.misses < this.opts.misses || this.targets.get(key) !== t) return;
      this.unwatch(key);
      t.onDead();
    } finally {
      t.busy = false;
    }
  }

  close(): void {
    this.closed = true;
    for (const k of [...this.targets.keys()]) this.unwatch(k);
  }
}
