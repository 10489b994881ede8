// DedupeWindow remembers, for a while, the outcome of every write request by
// its request id. A forwarding master re-sends what a dead leader never
// acknowledged, and clients retry with the same id; both then get the first
// outcome instead of a second execution ("created": false, or NOT_FOUND for a
// delete that did happen). The shell writes each outcome to etcd in the same
// transaction as the writes it describes (encode.ts), on a lease that expires
// on its own (dedupe-lease.ts), and a new leader loads them back.

import { ResourceState, type Resource } from '#protocol/messages.js';
import { toResource } from '#protocol/stored.js';
import { NotFoundError } from '#protocol/errors.js';
import type { KnownOutcome, Outcome } from '#protocol/outcomes.js';

/** How long an outcome is remembered; longer than any client deadline plus a failover. */
export const DEDUPE_WINDOW_MS = 60_000;

export interface Remembered {
  outcome: KnownOutcome;
  /** The revision it committed at; 0 while its commit is in flight. */
  revision: number;
  /** The leader's clock when it was remembered. */
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
  if (o.op === 'apply') return { ok: true, results: o.results, pruned: o.pruned, ...(o.prunedMore ? { prunedMore: true } : {}) };
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

export class DedupeWindow {
  private readonly seen = new Map<string, Remembered>();

  /** load takes the outcomes earlier leaders recorded, each at the revision of its record. */
  load(records: Iterable<{ revision: number; entries: Iterable<[string, KnownOutcome]> }>, now: number): void {
    for (const r of records) for (const [id, outcome] of r.entries) this.seen.set(id, { outcome, revision: r.revision, at: now });
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
   * window is dropped with its planned outcomes.
   */
  planned(id: string, outcome: Outcome, now: number): void {
    if (id) this.seen.set(id, { outcome, revision: 0, at: now });
  }

  /** remember stamps outcomes with the revision their transaction committed at. */
  remember(entries: ReadonlyArray<readonly [string, Outcome]>, revision: number, now: number): void {
    for (const [id, outcome] of entries) this.seen.set(id, { outcome, revision, at: now });
    this.expire(now);
  }

  /** expire forgets what is older than the window. */
  expire(now: number): void {
    // Map iteration is insertion order, so the oldest come first.
    for (const [id, r] of this.seen) {
      if (now - r.at < DEDUPE_WINDOW_MS) break;
      this.seen.delete(id);
    }
  }

  /** size is how many request outcomes the window holds. */
  get size(): number {
    return this.seen.size;
  }
}
