// Committer writes the leader's batches to etcd: every transaction fenced on
// the leader's election key (a deposed leader writes nothing), and chained
// through keys.commitChain so that several batches can be in flight at once
// and still apply in order or not at all.
//
// etcd may apply requests that were in flight together in another order;
// then the chain check refuses the later one (it certainly did not apply),
// and once its predecessor has committed it is sent again (a check that
// writes nothing, with the fence alone). If the predecessor failed, so does
// every later one.
//
// A transaction whose answer never came (a call deadline on a loaded etcd)
// may or may not have applied. While our own lease is certainly alive (etcd
// answers us, slowly) it is sent again as it was: the chain key tells the
// two apart (the store answers a copy that finds its own next value with the
// revision it applied at), so an unknown outcome costs one more transaction
// instead of a reload of the whole cluster. Once the lease is in doubt (etcd
// down, quorum lost) it fails at once: clients must hear UNAVAILABLE fast.

import { randomBytes } from 'node:crypto';
import { keys } from '#protocol/keys.js';
import { ChainBrokenError, type ChainLink, type Guard, type Op, type Store } from '#platform/ports.js';
import type { Clock } from '#platform/clock.js';
import { UnavailableError } from '#protocol/errors.js';

/**
 * Batches whose commits may be in flight at once. Planning the next batch
 * need not wait for etcd, but each in-flight batch holds its replies back.
 */
export const PIPELINE_DEPTH = 4;
/** A transaction refused for a broken chain is re-sent after its predecessor, at most this often. */
const CHAIN_RETRIES = 3;
/** A transaction whose outcome is unknown is sent again at most this often, this far apart, before the batch fails. */
export const UNKNOWN_OUTCOME_RETRIES = 4;
export const UNKNOWN_OUTCOME_PAUSE_MS = 250;

export interface CommitObserver {
  /** One transaction committed after this many seconds. */
  txn(seconds: number): void;
  /** One batch committed, answering this many client requests. */
  batch(requests: number): void;
  /** A transaction's answer was lost and it is sent again. */
  unknownOutcome?(): void;
}

export class Committer {
  /** Batches in flight, oldest first. */
  private readonly inflight: Array<Promise<unknown>> = [];
  /** The last transaction sent; the next one waits on it if etcd applied them out of order. */
  private tail: Promise<unknown> = Promise.resolve();
  private seq = 0;
  /**
   * Chain values are unique to this Committer, not just to the term: after a
   * reload the next Committer starts its sequence again, and a write of the
   * last one that etcd applies late must not find a value it expects.
   */
  private readonly series = randomBytes(4).toString('hex');

  /**
   * @param chainValue what the commit chain holds now (undefined: the key does not exist yet).
   */
  constructor(
    private readonly store: Store,
    private readonly guard: Guard,
    private chainValue: Uint8Array | undefined,
    private readonly clock: Clock,
    /** Whether etcd answers us at all (our lease is certainly alive): a lost answer is sent again only then. */
    private readonly reachable: () => boolean,
    private readonly observer?: CommitObserver,
  ) {}

  /**
   * commit sends every transaction now, in order, and resolves with their
   * revisions once all have applied. A transaction with no ops only checks
   * the chain (a cheap linearizable read that proves we still lead). It
   * rejects with NotLeaderError when the fence failed, and with whatever
   * etcd said otherwise; later transactions of a failed one fail too.
   * onTxn hears of each transaction as it commits, in order, before the
   * batch as a whole has.
   */
  commit(txns: ReadonlyArray<{ ops: Op[] }>, requests: number, onTxn?: (index: number, revision: number) => void): Promise<number[]> {
    const sent = txns.map((t) => {
      const next = t.ops.length > 0 ? Buffer.from(`${this.guard.createRevision}:${this.series}:${++this.seq}`) : undefined; // see passed()
      const link: ChainLink = { key: keys.commitChain, expect: this.chainValue, ...(next ? { next } : {}) };
      if (next) this.chainValue = next;
      const rev = this.send(t.ops, link);
      rev.catch(() => undefined); // awaited below, in order
      return rev;
    });
    const all = (async () => {
      const revs: number[] = [];
      for (const rev of sent) {
        revs.push(await rev);
        onTxn?.(revs.length - 1, revs[revs.length - 1]!);
      }
      this.observer?.batch(requests);
      return revs;
    })();
    this.track(all);
    return all;
  }

  /** room resolves once fewer than PIPELINE_DEPTH batches are in flight. */
  async room(): Promise<void> {
    while (this.inflight.length >= PIPELINE_DEPTH) await this.inflight[0]!.catch(() => undefined);
  }

  /** drain resolves once nothing is in flight. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
  }

  private track(p: Promise<unknown>): void {
    this.inflight.push(p);
    const done = () => this.inflight.splice(this.inflight.indexOf(p), 1);
    p.then(done, done);
  }

  private send(ops: Op[], link: ChainLink): Promise<number> {
    const prev = this.tail;
    const t0 = this.clock.now();
    let linked: ChainLink | undefined = link;
    const attempt = async (): Promise<number> => {
      for (let tries = 0, unknown = 0; ; ) {
        try {
          const rev = await this.store.txn(this.guard, ops, linked);
          this.observer?.txn((this.clock.now() - t0) / 1000);
          return rev;
        } catch (err) {
          if (err instanceof UnavailableError && this.reachable() && unknown++ < UNKNOWN_OUTCOME_RETRIES) {
            this.observer?.unknownOutcome?.();
            await this.clock.sleep(UNKNOWN_OUTCOME_PAUSE_MS);
            continue;
          }
          if (!(err instanceof ChainBrokenError)) throw err;
          // The chain went on from this link: a copy of it applied (its answer
          // lost) and later links of this series applied after it. Their
          // revision is an upper bound of this one's, which is all that
          // replies and assignment events need (a later write is later still).
          if (link.next && this.passed(err.held, link.next) && err.heldRevision !== undefined) return err.heldRevision;
          if (tries++ >= CHAIN_RETRIES) throw err;
          await prev;
          // A check that writes nothing does not hold the chain back, so a
          // later write may pass it while it waits: once its predecessor has
          // committed, the order it needs holds, and the fence alone is what
          // is left to prove.
          if (!link.next) linked = undefined;
        }
      }
    };
    const rev = attempt();
    this.tail = rev;
    return rev;
  }

  /** passed: the chain holds a value this Committer wrote at or after `mine`. */
  private passed(held: Uint8Array | undefined, mine: Uint8Array): boolean {
    if (!held) return false;
    const [h, m] = [Buffer.from(held).toString(), Buffer.from(mine).toString()];
    const ours = `${this.guard.createRevision}:${this.series}:`;
    return h.startsWith(ours) && m.startsWith(ours) && Number(h.slice(ours.length)) >= Number(m.slice(ours.length));
  }
}
