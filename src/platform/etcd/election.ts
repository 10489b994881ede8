// Election: every master is a candidate with one key under keys.electionPrefix,
// bound to its own lease. The candidate whose key has the lowest create
// revision leads. That revision is the leader's fencing token: every leader
// write is guarded by `CreateRevision(key) == revision`, so a leader whose key
// has gone (lease expired, revoked, resigned) can no longer write anything.
//
// Guarantees: at most one candidate believes itself leader *per fencing token*;
// two may briefly both believe it (a paused old leader), but only the one whose
// key still exists can commit. Non-guarantee: the belief itself is not
// exclusive; code must never act outside etcd on leadership alone.

import { keys } from '#protocol/keys.js';
import type { Guard, KV, Store } from '../ports.js';
import { KeptLease, type LeaseTiming } from './lease.js';
import { logger } from '../log.js';
import { withRetry } from '../retry.js';

export interface Candidate {
  id: string;
  key: string;
  createRevision: number;
  lease: string;
}

export interface ElectionCallbacks {
  /** Fires whenever the known leader changes (undefined while none is known). */
  onLeaderChange(leader: Candidate | undefined): void;
  /** Fires when this candidate becomes leader; the guard fences its writes. */
  onStartedLeading(guard: Guard): void;
  /** Always fires after onStartedLeading once leadership is over, for any reason. */
  onStoppedLeading(reason: string): void;
}

function decodeCandidate(kv: KV): Candidate {
  return { id: Buffer.from(kv.value).toString(), key: kv.key, createRevision: kv.createRevision, lease: kv.lease };
}

export class Election {
  private readonly candidates = new Map<string, Candidate>();
  private lease: KeptLease | undefined;
  private myKey: string | undefined;
  private watch: { close(): Promise<void> } | undefined;
  private leading: Guard | undefined;
  private leader: Candidate | undefined;
  private readonly stop = new AbortController();
  private readonly log;

  constructor(
    private readonly store: Store,
    private readonly id: string,
    private readonly timing: LeaseTiming,
    private readonly cb: ElectionCallbacks,
  ) {
    this.log = logger().child({ component: 'election' });
  }

  get currentLeader(): Candidate | undefined {
    return this.leader;
  }

  /** storeReachable: our own lease is certainly alive, so etcd answered us recently. */
  get storeReachable(): boolean {
    return this.lease?.alive ?? false;
  }

  /** members lists every candidate's id, leader first. */
  get members(): string[] {
    return [...this.candidates.values()].sort((a, b) => a.createRevision - b.createRevision).map((c) => c.id);
  }

  /** start joins the election. It resolves once the candidacy is in etcd and observed. */
  async start(): Promise<void> {
    await this.campaign();
  }

  private async campaign(): Promise<void> {
    const lease: KeptLease = await KeptLease.grant(this.store, this.timing, {
      // An overdue keepalive alone does not end leadership: every leader
      // write and every answer goes through a transaction fenced on our key,
      // so if the key is gone nothing we do lands. Stepping down here instead
      // made a leader busy loading a large state fence itself, reload, and
      // fence again. We step down when etcd says the lease is gone.
      onFenced: () => undefined,
      onRestored: () => undefined,
      onExpired: () => this.onLeaseExpired(lease),
    });
    this.lease = lease;
    const key = keys.candidate(lease.id);
    this.myKey = key;
    await this.store.txn(undefined, [{ put: key, value: Buffer.from(this.id), lease: lease.id }]);
    await this.observe();
  }

  private async observe(): Promise<void> {
    await this.watch?.close();
    const snap = await this.store.range(keys.electionPrefix);
    this.candidates.clear();
    for (const kv of snap.kvs) this.candidates.set(kv.key, decodeCandidate(kv));
    this.recompute();
    this.watch = this.store.watch(
      keys.electionPrefix,
      snap.revision + 1,
      (events) => {
        for (const ev of events) {
          if (ev.type === 'put') this.candidates.set(ev.kv.key, decodeCandidate(ev.kv));
          else this.candidates.delete(ev.kv.key);
        }
        this.recompute();
      },
      () => void this.retry(() => this.observe(), 'observe'),
    );
  }

  private recompute(): void {
    let lowest: Candidate | undefined;
    for (const c of this.candidates.values()) if (!lowest || c.createRevision < lowest.createRevision) lowest = c;
    if (lowest?.key !== this.leader?.key) {
      this.leader = lowest;
      this.log.info({ leader: lowest?.id }, 'leader changed');
      this.cb.onLeaderChange(lowest);
    }
    const mine = this.myKey !== undefined && lowest?.key === this.myKey;
    if (mine && !this.leading) {
      this.leading = { key: lowest!.key, createRevision: lowest!.createRevision };
      this.cb.onStartedLeading(this.leading);
    } else if (!mine && this.leading) {
      this.stopLeading('another candidate leads');
    }
  }

  /** stepDown is called when a fenced write failed: our key is gone or replaced. */
  stepDown(reason: string): void {
    if (!this.leading) return;
    this.stopLeading(reason);
    // Our key is gone from etcd (or about to be); stand again with a fresh lease.
    this.lease?.release();
    void this.retry(() => this.campaign(), 'campaign');
  }

  /**
   * handOver gives leadership to the next candidate now, and stands again
   * behind it: our key is deleted (its lease revoked), so the candidate with
   * the next lowest revision leads at once. False, and nothing changes, when
   * we do not lead or no other candidate stands. Our writes are fenced on the
   * deleted key, so none of ours lands after the next leader's first.
   */
  handOver(reason: string): boolean {
    if (!this.leading || this.candidates.size < 2) return false;
    const lease = this.lease;
    this.lease = undefined; // its expiry is no news now
    this.myKey = undefined; // until the new key is in: our old one must not make us lead again
    this.stopLeading(reason);
    void (async () => {
      await lease?.revoke();
      await this.retry(() => this.campaign(), 'campaign');
    })();
    return true;
  }

  private stopLeading(reason: string): void {
    if (!this.leading) return;
    this.leading = undefined;
    this.cb.onStoppedLeading(reason);
  }

  private onLeaseExpired(lease: KeptLease): void {
    if (lease !== this.lease || this.stop.signal.aborted) return;
    this.stopLeading('lease expired');
    void this.retry(() => this.campaign(), 'campaign');
  }

  /** retry runs fn until it succeeds or we stop; the election must not give up on a flaky etcd. */
  private async retry(fn: () => Promise<void>, what: string): Promise<void> {
    await withRetry(fn, {
      initialMs: 100,
      maxMs: 2000,
      signal: this.stop.signal,
      onRetry: (err) => this.log.warn({ err: (err as Error)?.message }, `${what} failed; retrying`),
    }).catch(() => undefined);
  }

  /**
   * resign leaves the election at once: our key is deleted, and the next
   * candidate leads immediately. We keep observing who leads until close.
   */
  async resign(): Promise<void> {
    this.stop.abort();
    this.stopLeading('resigned');
    await this.lease?.revoke();
  }

  async close(): Promise<void> {
    this.stop.abort();
    this.lease?.release();
    await this.watch?.close();
  }
}
