// DedupeLease is the etcd lease the dedupe records of one loaded state live
// on, and the records' keys. Records expire with their lease, so etcd holds
// each outcome about as long as the window remembers it (core/dedupe-window.ts)
// without the leader deleting anything. A fresh lease is granted in the
// background once the current one is a bucket old; records keep going on the
// current one (which has most of its TTL left) meanwhile, so writing a record
// never waits.

import { keys } from '#protocol/keys.js';
import { encodeOutcomes, type Outcome } from '#protocol/outcomes.js';
import type { Op, Store } from '#platform/ports.js';
import type { Clock } from '#platform/clock.js';
import { DEDUPE_WINDOW_MS } from './core/dedupe-window.js';

/** A new etcd lease every this often; keys on it live DEDUPE_WINDOW_MS to DEDUPE_WINDOW_MS + this. */
const BUCKET_MS = 10_000;

export class DedupeLease {
  private lease: { id: string; until: number } | undefined;
  private seq = 0;
  private renewing = false;

  /**
   * @param loadRevision the revision the leader's state was loaded at: part
   * of every record key, so a leader that reloads within its term (and
   * starts its sequence again) never overwrites what it recorded before.
   */
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly term: number,
    private readonly loadRevision: number,
  ) {}

  /** start grants the first lease; records cannot be written without one. */
  async start(): Promise<void> {
    await this.renew();
    if (!this.lease) throw new Error('could not grant a lease for dedupe records');
  }

  /** record returns the etcd put recording these outcomes, on the current lease. */
  record(entries: ReadonlyArray<readonly [string, Outcome]>): Op {
    return { put: keys.dedupe(this.term, this.loadRevision, ++this.seq), value: encodeOutcomes(entries), lease: this.lease!.id };
  }

  /** maintain fetches a fresh lease in the background once the current one is a bucket old. */
  maintain(): void {
    if (this.lease && this.clock.now() > this.lease.until) void this.renew();
  }

  private async renew(): Promise<void> {
    if (this.renewing) return;
    this.renewing = true;
    try {
      const id = await this.store.grantLease(Math.ceil(DEDUPE_WINDOW_MS / 1000));
      this.lease = { id, until: this.clock.now() + BUCKET_MS };
    } catch {
      // Keep the current lease; the next maintain tries again.
    } finally {
      this.renewing = false;
    }
  }
}
