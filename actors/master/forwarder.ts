// Forwarder hands client requests to a leader on another master: it
// re-publishes each to master.leader.<leader>, keeping the client's reply
// subject (so the leader answers the client directly), and tracks those it
// received itself until the leader acknowledges them (master.ack.<self>).
// What a dead or deposed leader never acknowledged is routed again; the
// leader's dedupe makes a second delivery safe.

import { packed } from '#protocol/codec.js';
import { subjects } from '#protocol/subjects.js';
import { forwardHeaders, type ClientRequest } from '#protocol/request.js';
import type { AckMessage } from '#protocol/messages.js';
import type { Bus } from '#platform/ports.js';
import type { Clock, Timer } from '#platform/clock.js';
import type { Logger } from '#platform/log.js';

/** A forwarded request with no ack after this long is sent again (dedupe makes that safe). */
export const RESEND_AFTER_MS = 5000;
/** Past this nobody waits for the answer any more. */
export const FORGET_AFTER_MS = 30000;
const SWEEP_EVERY_MS = 1000;

interface InFlight {
  req: ClientRequest;
  leader: string;
  /** Clock time of the last send. */
  sentAt: number;
}

export interface ForwarderHooks {
  /** Routes a request again: to the current leader, ours, or the parked requests. */
  route(req: ClientRequest): void;
  /** The leader acknowledged a request we forwarded, this long after we received it. */
  acked(req: ClientRequest, seconds: number, failed: boolean): void;
}

export class Forwarder {
  private readonly inflight = new Map<string, InFlight>();
  private readonly sweeper: Timer;

  constructor(
    private readonly bus: Bus,
    private readonly clock: Clock,
    private readonly self: string,
    private readonly hooks: ForwarderHooks,
    private readonly log: Logger,
  ) {
    this.sweeper = clock.every(SWEEP_EVERY_MS, () => this.sweep());
  }

  /** pending is how many forwarded requests await an ack. */
  get pending(): number {
    return this.inflight.size;
  }

  /** forward re-publishes req to leader; requests we received ourselves stay tracked until acked. */
  forward(req: ClientRequest, leader: string): void {
    const origin = req.origin ?? this.self;
    this.bus.publish(subjects.leader(leader), req.data, { reply: req.reply, headers: forwardHeaders(req, origin) });
    if (origin === this.self) this.inflight.set(req.id, { req, leader, sentAt: this.clock.now() });
  }

  /** onAck retires what the leader answered. */
  onAck(data: Uint8Array): void {
    let ack: AckMessage;
    try {
      ack = packed.decode(data) as AckMessage;
      if (!Array.isArray(ack?.ids)) throw new Error('ack without ids');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'ignoring malformed ack');
      return;
    }
    const now = this.clock.now();
    const failed = new Set(Array.isArray(ack.errors) ? ack.errors : []);
    for (const id of ack.ids) {
      const f = this.inflight.get(id);
      if (!f) continue;
      this.inflight.delete(id);
      this.hooks.acked(f.req, (now - f.req.receivedAt) / 1000, failed.has(id));
    }
  }

  /** resend routes again every unacknowledged request forwarded to a leader that match accepts. */
  resend(match: (leader: string) => boolean): void {
    for (const [id, f] of this.inflight) {
      if (!match(f.leader)) continue;
      this.inflight.delete(id);
      this.hooks.route(f.req);
    }
  }

  /** sweep forgets what nobody waits for any more and resends what waited too long for an ack. */
  sweep(): void {
    const now = this.clock.now();
    // Forgotten by age since we received it, not since we last sent it, or it would be re-sent forever.
    for (const [id, f] of this.inflight) if (now - f.req.receivedAt > FORGET_AFTER_MS) this.inflight.delete(id);
    for (const [id, f] of this.inflight) {
      if (now - f.sentAt <= RESEND_AFTER_MS) continue;
      this.inflight.delete(id);
      this.hooks.route(f.req);
    }
  }

  stop(): void {
    this.sweeper.cancel();
  }
}
