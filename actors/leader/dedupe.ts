// Dedupe remembers, for a while, the outcome of every write request by its
// request id, in memory and in etcd (one key per committed transaction, on a
// lease that expires on its own). A forwarding master re-sends what a dead
// leader never acknowledged, and clients retry with the same id; both then
// get the first outcome instead of a second execution ("created": false, or
// NOT_FOUND for a delete that did happen).

import { keys } from '#protocol/keys.js';
import { packed } from '#protocol/codec.js';
import type { KV, Op, Store } from '#platform/ports.js';
import type { Clock } from '#platform/clock.js';
import { ResourceState, type Resource } from '#protocol/messages.js';
import { toResource, type StoredResource } from '#protocol/stored.js';
import { NotFoundError } from '#protocol/errors.js';

/** How long an outcome is remembered; longer than any client deadline plus a failover. */
export const DEDUPE_WINDOW_MS = 60_000;
/** A new etcd lease every this often; keys on it live DEDUPE_WINDOW_MS to DEDUPE_WINDOW_MS + this. */
const BUCKET_MS = 10_000;

/**
 * Outcome is a write's answer without its revision, which the transaction's
 * own revision supplies. A write that changed nothing has one too: an add
 * answered "exists", a delete or restart answered NOT_FOUND. A copy of such a
 * request that turns up later (held by a hung master, handed over when its
 * leadership was lost) must get that answer again, not run after whatever
 * came since: an "exists" add replayed after a delete would create the
 * resource again, for an id nobody was told was created.
 */
export type Outcome =
  | { op: 'add'; created: boolean; rec: StoredResource }
  | { op: 'delete'; rec: StoredResource }
  | { op: 'restart'; rec: StoredResource }
  | { op: 'absent'; name: string };

/**
 * What etcd keeps: an add only as name and id (the record itself is in
 * gaffer/resources, so a new leader need not read it twice), a delete with
 * the record it removed (nothing else has it any more).
 */
type Recorded = ['a', string, string] | ['e', string, string] | ['d', StoredResource] | ['r', string, string] | ['n', string];

/** A remembered outcome: in full when this leader made it, as a name and id when an earlier leader did. */
type Known =
  | Outcome
  | { op: 'added'; name: string; id: string }
  | { op: 'existed'; name: string; id: string }
  | { op: 'restarted'; name: string; id: string };

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
  if (o.op === 'absent') return { ok: false, error: new NotFoundError(`no resource named ${o.name}`).toWire() };
  if (o.op === 'added' || o.op === 'existed' || o.op === 'restarted') {
    const cur = now(o.name);
    const gone: Resource = { name: o.name, id: o.id, worker: null, spec: {}, createdAt: '', revision: r.revision, state: ResourceState.pending, attempt: 0, failures: 0 };
    const resource = cur?.id === o.id ? cur : gone;
    return o.op === 'restarted' ? { ok: true, resource } : { ok: true, created: o.op === 'added', resource };
  }
  if (o.op === 'add' && !o.created) {
    // It existed and was not written: as it is now if it is still the same one.
    const cur = now(o.rec.name);
    return { ok: true, created: false, resource: cur?.id === o.rec.id ? cur : toResource(o.rec, r.revision) };
  }
  const resource = toResource(o.rec, r.revision);
  return o.op === 'add' ? { ok: true, created: o.created, resource } : { ok: true, resource };
}

function record(o: Outcome): Recorded {
  if (o.op === 'absent') return ['n', o.name];
  if (o.op === 'add') return [o.created ? 'a' : 'e', o.rec.name, o.rec.id];
  if (o.op === 'restart') return ['r', o.rec.name, o.rec.id];
  return ['d', o.rec];
}

/** decodeRecorded reads one dedupe value back, skipping any entry not shaped like one we write. */
function decodeRecorded(value: Uint8Array): Array<[string, Known]> {
  const entries = packed.decode(value);
  if (!Array.isArray(entries)) return [];
  const out: Array<[string, Known]> = [];
  for (const e of entries as unknown[]) {
    if (!Array.isArray(e) || typeof e[0] !== 'string' || !Array.isArray(e[1])) continue;
    const [id, rec] = e as [string, unknown[]];
    if ((rec[0] === 'a' || rec[0] === 'e' || rec[0] === 'r') && typeof rec[1] === 'string' && typeof rec[2] === 'string') {
      const op = rec[0] === 'a' ? 'added' : rec[0] === 'e' ? 'existed' : 'restarted';
      out.push([id, { op, name: rec[1], id: rec[2] }]);
    }
    else if (rec[0] === 'n' && typeof rec[1] === 'string') out.push([id, { op: 'absent', name: rec[1] }]);
    else if (rec[0] === 'd' && rec[1] && typeof rec[1] === 'object') out.push([id, { op: 'delete', rec: rec[1] as StoredResource }]);
  }
  return out;
}

export class Dedupe {
  private readonly seen = new Map<string, Remembered>();
  private lease: { id: string; until: number } | undefined;
  private seq = 0;
  /** The revision the leader's state was loaded at: part of every record key. */
  private loadRevision = 0;

  constructor(
    private readonly store: Store,
    private readonly term: number,
    private readonly clock: Clock,
  ) {}

  /** load reads the outcomes earlier leaders recorded, as of the leader's load revision. */
  async load(revision: number, records: Iterable<KV>): Promise<void> {
    this.loadRevision = revision;
    await this.renew();
    if (!this.lease) throw new Error('could not grant a lease for dedupe records');
    const now = this.clock.now();
    for (const kv of records) {
      for (const [id, outcome] of decodeRecorded(kv.value)) this.seen.set(id, { outcome, revision: kv.modRevision, at: now });
    }
  }

  lookup(id: string): Remembered | undefined {
    return id ? this.seen.get(id) : undefined;
  }

  /**
   * planned remembers an outcome as soon as it is planned, before its commit:
   * a copy of the request in a later batch (a client retry, or a forwarding
   * master's resend) must get this outcome even while the commit is still in
   * the pipeline. Commits apply in order, so that later answer goes out after
   * this one is written; if this commit fails, the leader reloads and this
   * Dedupe is dropped with its planned outcomes.
   */
  planned(id: string, outcome: Outcome): void {
    if (id) this.seen.set(id, { outcome, revision: 0, at: this.clock.now() });
  }

  /** op returns the etcd put recording these outcomes, on a lease that expires by itself. */
  op(entries: Array<[string, Outcome]>): Op {
    const value = packed.encode(entries.map(([id, o]) => [id, record(o)]));
    // Keyed by the load revision too: a leader that reloads within its term
    // starts its sequence again, and must not overwrite what it recorded
    // before (chaos lost a delete's outcome so, and its retry found nothing).
    return { put: keys.dedupe(this.term, this.loadRevision, ++this.seq), value, lease: this.lease!.id };
  }

  /**
   * maintain fetches a fresh lease in the background once the current one is
   * a bucket old; records keep going on the current one (which has most of
   * its TTL left) meanwhile, so op never waits.
   */
  maintain(): void {
    const now = this.clock.now();
    if (this.lease && now > this.lease.until) void this.renew();
    // Also when no write comes to expire them, so the window's memory is bounded by time alone.
    this.expire(now);
  }

  /** size is how many request outcomes the window holds. */
  get size(): number {
    return this.seen.size;
  }

  private renewing = false;

  /** renew grants the lease new records go on; load awaits the first one. */
  async renew(): Promise<void> {
    if (this.renewing) return;
    this.renewing = true;
    try {
      const id = await this.store.grantLease(Math.ceil(DEDUPE_WINDOW_MS / 1000));
      this.lease = { id, until: this.clock.now() + BUCKET_MS };
    } catch {
      // Keep the current lease; the next op tries again.
    } finally {
      this.renewing = false;
    }
  }

  remember(entries: Array<[string, Outcome]>, revision: number): void {
    const at = this.clock.now();
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
