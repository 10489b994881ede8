// Dedupe remembers, for a while, the outcome of every write request by its
// request id, in memory and in etcd (one key per committed transaction, on a
// lease that expires on its own). A forwarding master re-sends what a dead
// leader never acknowledged, and clients retry with the same id; both then
// get the first outcome instead of a second execution ("created": false, or
// NOT_FOUND for a delete that did happen).

import { performance } from 'node:perf_hooks';
import { keys } from '../../src/keys.js';
import { packed } from '../../src/codec.js';
import type { Op, Store } from '../../src/store.js';
import type { Resource, StoredResource } from '../../src/protocol.js';

/** How long an outcome is remembered; longer than any client deadline plus a failover. */
export const DEDUPE_WINDOW_MS = 60_000;
/** A new etcd lease every this often; keys on it live DEDUPE_WINDOW_MS to DEDUPE_WINDOW_MS + this. */
const BUCKET_MS = 10_000;

/** Outcome is a write's answer without its revision, which the transaction's own revision supplies. */
export type Outcome = { op: 'add'; created: boolean; rec: StoredResource } | { op: 'delete'; rec: StoredResource };

/**
 * What etcd keeps: an add only as name and id (the record itself is in
 * gaffer/resources, so a new leader need not read it twice), a delete with
 * the record it removed (nothing else has it any more).
 */
type Recorded = ['a', string, string] | ['d', StoredResource];

/** A remembered outcome: in full when this leader made it, as a name and id when an earlier leader did. */
type Known = Outcome | { op: 'added'; name: string; id: string };

interface Remembered {
  outcome: Known;
  revision: number;
  at: number;
}

/**
 * answerOf rebuilds the first answer. An add recorded by an earlier leader is
 * answered with the resource as it is now, if it is still the same one; if it
 * was deleted since, with what is known of it.
 */
export function answerOf(r: Remembered, now: (name: string) => Resource | undefined): Record<string, unknown> {
  const o = r.outcome;
  if (o.op === 'added') {
    const cur = now(o.name);
    const resource = cur?.id === o.id ? cur : { name: o.name, id: o.id, worker: null, spec: {}, createdAt: '', revision: r.revision };
    return { ok: true, created: true, resource };
  }
  const resource: Resource = { ...o.rec, revision: r.revision };
  return o.op === 'add' ? { ok: true, created: o.created, resource } : { ok: true, resource };
}

function record(o: Outcome): Recorded {
  return o.op === 'add' ? ['a', o.rec.name, o.rec.id] : ['d', o.rec];
}

export class Dedupe {
  private readonly seen = new Map<string, Remembered>();
  private lease: { id: string; until: number } | undefined;
  private seq = 0;

  constructor(private readonly store: Store, private readonly term: number) {}

  /** load reads the outcomes earlier leaders recorded, as of the leader's load revision. */
  async load(revision: number): Promise<void> {
    const [snap] = await Promise.all([this.store.range(keys.dedupePrefix, revision), this.renew()]);
    if (!this.lease) throw new Error('could not grant a lease for dedupe records');
    const now = performance.now();
    for (const kv of snap.kvs) {
      const entries = packed.decode(kv.value) as Array<[string, Recorded]>;
      for (const [id, rec] of entries) {
        if (!Array.isArray(rec)) continue; // not a record this version wrote
        const outcome: Known = rec[0] === 'a' ? { op: 'added', name: rec[1], id: rec[2] } : { op: 'delete', rec: rec[1] };
        this.seen.set(id, { outcome, revision: kv.modRevision, at: now });
      }
    }
  }

  lookup(id: string): Remembered | undefined {
    return id ? this.seen.get(id) : undefined;
  }

  /**
   * op returns the etcd put recording these outcomes, on a lease that expires
   * by itself. It never waits: a fresh lease is fetched in the background
   * while the current one (which has most of its TTL left) is still used.
   */
  op(entries: Array<[string, Outcome]>): Op {
    const lease = this.lease!;
    if (performance.now() > lease.until) void this.renew();
    const value = packed.encode(entries.map(([id, o]) => [id, record(o)]));
    return { put: keys.dedupe(this.term, ++this.seq), value, lease: lease.id };
  }

  private renewing = false;

  /** renew grants the lease new records go on; load awaits the first one. */
  async renew(): Promise<void> {
    if (this.renewing) return;
    this.renewing = true;
    try {
      const res = await this.store.client.leaseClient.leaseGrant({ TTL: Math.ceil(DEDUPE_WINDOW_MS / 1000), ID: 0 });
      this.lease = { id: String(res.ID), until: performance.now() + BUCKET_MS };
    } catch {
      // Keep the current lease; the next op tries again.
    } finally {
      this.renewing = false;
    }
  }

  remember(entries: Array<[string, Outcome]>, revision: number): void {
    const at = performance.now();
    for (const [id, outcome] of entries) this.seen.set(id, { outcome, revision, at });
    this.expire(at);
  }

  private expire(now: number): void {
    // Map iteration is insertion order, so the oldest come first.
    for (const [id, r] of this.seen) {
      if (now - r.at < DEDUPE_WINDOW_MS) break;
      this.seen.delete(id);
    }
  }
}
