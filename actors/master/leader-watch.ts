// LeaderWatch probes the current leader's subject from a follower. When NATS
// says nobody subscribes there any more, that leader is dead (or cut off from
// NATS), and we revoke its lease so the election moves on now instead of
// after its TTL. A wrongly revoked leader is harmless: its next fenced write
// fails and it steps down.

import { subjects } from '#protocol/subjects.js';
import type { Candidate } from '#platform/etcd/election.js';
import type { Prober } from '#platform/nats/prober.js';
import type { Store } from '#platform/ports.js';
import type { Clock, Timer } from '#platform/clock.js';
import type { Logger } from '#platform/log.js';

/** How long after a leader change we start probing the new leader: it subscribes as it learns it leads. */
export const LEADER_PROBE_GRACE_MS = 500;
const PROBE_KEY = 'leader';

export class LeaderWatch {
  private start: Timer | undefined;

  constructor(
    private readonly self: string,
    private readonly prober: Prober,
    private readonly store: Store,
    private readonly clock: Clock,
    /** The leader as the election sees it now. */
    private readonly current: () => Candidate | undefined,
    private readonly log: Logger,
  ) {}

  /** follow starts watching a new leader (nothing when it is us or none). */
  follow(l: Candidate | undefined): void {
    this.stop();
    if (!l || l.id === this.self) return;
    this.start = this.clock.after(LEADER_PROBE_GRACE_MS, () => {
      if (this.current()?.key !== l.key) return;
      this.prober.watch(PROBE_KEY, subjects.leader(l.id), () => void this.revoke(l));
    });
  }

  stop(): void {
    this.prober.unwatch(PROBE_KEY);
    this.start?.cancel();
  }

  private async revoke(l: Candidate): Promise<void> {
    if (this.current()?.key !== l.key) return;
    this.log.warn({ leader: l.id, lease: l.lease }, 'leader is gone from NATS; revoking its lease');
    try {
      await this.store.revokeLease(l.lease);
    } catch (err) {
      this.log.info({ err: (err as Error).message }, 'leader lease revoke failed (already gone?)');
    }
  }
}
