// Prober detects dead peers fast and for certain. It sends a tiny request to
// a subject only the peer subscribes to; NATS answers "no responders" at once
// when no subscription exists, which means the peer's process is gone or its
// NATS connection is. Slow answers and timeouts prove nothing and are
// ignored. Right after our own (re)connect every peer may look absent for a
// moment, so nothing is declared dead until our connection has been stable.
// The same holds when a server of a NATS cluster goes away: the peers that
// were connected to it are reconnecting to another server, and their
// subscriptions reach ours over a route only once they have; our server
// tells us of the change (an INFO update) as it drops the route, so that
// resets the clock too.

import { Empty, headers as natsHeaders, type MsgHdrs } from 'nats';
import { Header, isReplySubject } from '#protocol/subjects.js';
import { NoRespondersError } from '#protocol/errors.js';
import type { Bus, BusMsg } from '../ports.js';
import { systemClock, type Clock, type Timer } from '../clock.js';

export interface ProberOptions {
  intervalMs: number;
  /** Consecutive "no responders" answers before a peer is declared dead. */
  misses: number;
  /** How long our own connection (and the cluster we see) must have been unchanged before we believe a miss. */
  stableMs: number;
}

export const DEFAULT_PROBING: ProberOptions = { intervalMs: 100, misses: 2, stableMs: 1000 };

interface Target {
  subject: string;
  misses: number;
  timer: Timer;
  busy: boolean;
  onDead: () => void;
}

/** pingHeaders marks a probe, so the peer answers it without any work. */
export function pingHeaders(): MsgHdrs {
  const h = natsHeaders();
  h.set(Header.ping, '1');
  return h;
}

export function isPing(h: { get(k: string): string } | undefined): boolean {
  return h?.get(Header.ping) === '1';
}

/**
 * answerPing replies to a probe with an empty body; the reply itself is the
 * answer. Only to an inbox: a probe naming another subject would have us
 * publish wherever its sender points.
 */
export function answerPing(bus: Bus, msg: BusMsg): void {
  if (msg.reply && isReplySubject(msg.reply)) bus.publish(msg.reply, Empty);
}

export class Prober {
  private readonly targets = new Map<string, Target>();
  private stableSince: number;
  private closed = false;
  private readonly unhook: () => void;

  constructor(
    private readonly bus: Bus,
    private readonly opts: ProberOptions = DEFAULT_PROBING,
    private readonly clock: Clock = systemClock,
  ) {
    this.stableSince = clock.now();
    this.unhook = bus.onStatus(() => (this.stableSince = this.clock.now()));
  }

  /** watch probes `subject` until unwatched; onDead fires at most once, then probing of that key stops. */
  watch(key: string, subject: string, onDead: () => void, intervalMs = this.opts.intervalMs): void {
    if (this.closed) return;
    this.unwatch(key);
    const t: Target = { subject, misses: 0, busy: false, onDead, timer: this.clock.every(intervalMs, () => void this.probe(key, t)) };
    this.targets.set(key, t);
  }

  unwatch(key: string): void {
    this.targets.get(key)?.timer.cancel();
    this.targets.delete(key);
  }

  private async probe(key: string, t: Target): Promise<void> {
    if (t.busy || this.bus.closed) return;
    t.busy = true;
    try {
      await this.bus.request(t.subject, Empty, { timeoutMs: Math.max(500, this.opts.intervalMs * 5), headers: pingHeaders() });
      t.misses = 0;
    } catch (err) {
      if (!(err instanceof NoRespondersError)) return;
      if (this.clock.now() - this.stableSince < this.opts.stableMs) return;
      if (++t.misses < this.opts.misses || this.targets.get(key) !== t) return;
      this.unwatch(key);
      t.onDead();
    } finally {
      t.busy = false;
    }
  }

  close(): void {
    this.closed = true;
    this.unhook();
    for (const k of [...this.targets.keys()]) this.unwatch(k);
  }
}
