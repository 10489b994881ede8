// ClusterState is the leader's in-memory model of the cluster: resources,
// live workers, what is pending, cordons, handoffs in flight, the dedupe
// window, and the change log of the batch being planned. It holds data and
// the bookkeeping every rule shares (touch, free, the batch budget); the
// rules themselves are functions over it in the files beside this one, and
// only they change it. The shell reads it through the methods below, and
// tells it of commits (committed) the way raft's caller calls Advance.
//
// `running` and progress are kept in memory only, and written with the
// record whenever it is written for another reason: they are what the leader
// knows, not what must survive it (workers report again to a new leader).

import type { Resource, WorkerLoad } from '#protocol/messages.js';
import { isShardName } from '#protocol/shards.js';
import { ChangeLog, type Changes } from './change-log.js';
import { DedupeWindow } from './dedupe-window.js';
import { FenceWaits } from './fence-waits.js';
import type { Assignment, Cordon, Entry, WorkerEntry } from './records.js';
import { shardedView } from './shards.js';
import { ScheduleBook } from './schedule-book.js';
import { SortedNames } from './sorted-names.js';

export class ClusterState {
  /**
   * @param resources a load's resources, taken over as they are (repair.ts
   * adoptResources finishes them): at a million, inserting them one by one
   * is seconds of a takeover.
   */
  constructor(readonly resources = new Map<string, Entry>()) {}

  readonly workers = new Map<string, WorkerEntry>();
  /** Resources that want a worker and have none. */
  readonly pending = new Set<string>();
  /** Cordons as etcd has them (or will): by worker id, live or not, since a cordon outlives restarts. */
  readonly cordons = new Map<string, Cordon>();
  /** Resources in a handoff, by the worker they are leaving. */
  readonly leaving = new Map<string, Set<string>>();
  /** Write outcomes by request id, for re-sent requests. */
  readonly outcomes = new DedupeWindow();
  /** Resources taken from a worker that may still run them: their next attempt waits. */
  readonly fenceWaits = new FenceWaits();
  /** Resources whose worker came back as a new incarnation, waiting for their new attempt there. */
  readonly reattempt = new Set<string>();
  /** Resources whose assignment key a load found stale, waiting to be rewritten. */
  readonly restamp = new Set<string>();
  /** Scheduled resources, their next fires and the events their rules announce. */
  readonly schedules = new ScheduleBook();
  readonly log = new ChangeLog();
  /** Sharded resources whose shards reported something that may let them complete (shards.ts). */
  readonly shardChecks = new Set<string>();
  /** Ids of sharded resources removed this batch: the shell drops their queues. */
  shardDrops: Array<{ id: string; count: number }> = [];
  /**
   * How many pending resources are still to be tried since something changed
   * that may let them be placed; Infinity asks for a whole pass.
   */
  toTry = Infinity;
  /** Most resources a batch touches before work that can wait (moves, new attempts) waits for the next one. */
  private budget = Infinity;
  /** Most resources that work may touch in this batch (the shell paces it), and how many it has touched so far. */
  private backlogBudget = Infinity;
  private backlogUsed = 0;
  /** While work that can wait runs: the batch's count of touched resources, less what that work touched before. */
  private backlogFrom = Infinity;

  /** budgetSize is the batch's budget: how many resources it may touch. */
  get budgetSize(): number {
    return this.budget;
  }
  /** This batch left work for the next. */
  cut = false;
  /** Names in order, for page. */
  private readonly order = new SortedNames();

  /** Batches begun so far: what is computed once per batch (the status summary) is keyed on it. */
  batch = 0;

  /**
   * begin starts a batch planned at `now` (the leader's clock) that touches
   * at most `budget` resources, of which the work that can wait at most
   * `backlog` (see backlog()).
   */
  begin(budget: number, now: number, backlog = Infinity): void {
    this.batch++;
    this.budget = budget;
    this.backlogBudget = backlog;
    this.backlogUsed = 0;
    this.backlogFrom = Infinity;
    this.cut = false;
    this.fenceWaits.begin(now);
  }

  /**
   * backlog runs work that can wait (restamps, new attempts, placing
   * pending resources: the moves of a lost worker): what it touches counts
   * against the batch's backlog allowance as well as its budget.
   */
  backlog(work: () => void): void {
    if (Number.isFinite(this.backlogFrom)) return work();
    const from = this.log.touched;
    this.backlogFrom = from - this.backlogUsed;
    try {
      work();
    } finally {
      this.backlogUsed += this.log.touched - from;
      this.backlogFrom = Infinity;
    }
  }

  /** backlogTouched: how many resources the batch's work that can wait has touched. */
  get backlogTouched(): number {
    return this.backlogUsed;
  }

  /** spent: the batch has touched as many resources as its budget allows, or its backlog as many as it may. */
  get spent(): boolean {
    return this.log.touched >= this.budget || this.log.touched - this.backlogFrom >= this.backlogBudget;
  }

  /** touch records what `name` was before the batch first changes it. */
  touch(name: string): void {
    if (this.log.before.has(name)) return;
    const e = this.resources.get(name);
    this.log.before.set(name, { existed: e !== undefined, id: e?.rec.id, assign: e?.assign && { ...e.assign } });
  }

  /** free takes `name` off its worker's list: room that may let a pending resource be placed. */
  free(worker: string, name: string): void {
    const w = this.workers.get(worker);
    if (!w) return;
    w.names.delete(name);
    this.toTry = Infinity;
  }

  /** within takes names off `queue` while the batch's budget lasts; what is left waits for the next batch. */
  within(queue: Set<string>, each: (name: string) => void): void {
    for (const name of queue) {
      if (this.spent) return void (this.cut = true);
      queue.delete(name);
      each(name);
    }
  }

  /** renamed says the set of names changed: `name` added or removed, or (no name) anything. */
  renamed(name?: string, added?: boolean): void {
    this.order.changed(name, added);
  }

  /** takeChanges empties the change log into what the shell encodes and announces. */
  takeChanges(): Changes {
    return this.log.take((n) => this.resources.get(n), (id) => this.cordons.get(id));
  }

  // --- what the shell tells it --------------------------------------------

  /** committed stamps the revision etcd gave the resources a transaction wrote. */
  committed(names: Iterable<string>, revision: number): void {
    for (const name of names) {
      const e = this.resources.get(name);
      if (e) e.revision = revision;
    }
  }

  // --- reads --------------------------------------------------------------

  view(name: string): Resource | undefined {
    const e = this.resources.get(name);
    return e && shardedView(this, e);
  }

  /** revisionOf is the revision a resource was last written at (0 until its first commit). */
  revisionOf(name: string): number | undefined {
    return this.resources.get(name)?.revision;
  }

  /** epochOf is a live worker's current incarnation. */
  epochOf(id: string): string | undefined {
    return this.workers.get(id)?.epoch;
  }

  /** handoffFrom is the old owner of a resource in a handoff. */
  handoffFrom(name: string): Assignment | undefined {
    return this.resources.get(name)?.handoff?.from;
  }

  /** entry is a resource as the encoder needs it (read only). */
  entry(name: string): Readonly<Entry> | undefined {
    return this.resources.get(name);
  }

  /** names is every resource name in order (kept until the next add or remove). */
  names(): readonly string[] {
    return this.order.of(this.resources);
  }

  /**
   * page lists resources in name order after `after`, at most `limit` of
   * them and stopping near `maxBytes` of JSON; `next` is set when more remain.
   */
  page(after: string | undefined, limit: number, maxBytes: number): { resources: Resource[]; next?: string } {
    const names = this.names();
    let i = 0;
    if (after !== undefined) {
      // First index whose name is greater than `after`.
      let hi = names.length;
      while (i < hi) {
        const mid = (i + hi) >> 1;
        if (names[mid]! <= after) i = mid + 1;
        else hi = mid;
      }
    }
    const out: Resource[] = [];
    let bytes = 0;
    for (; i < names.length && out.length < limit; i++) {
      // A shard is listed with its resource (shardedView), not as a resource of its own.
      if (isShardName(names[i]!)) continue;
      const e = this.resources.get(names[i]!)!;
      bytes += 300 + e.rec.name.length + JSON.stringify(e.rec.spec).length + jsonSize(e.rec.result) + jsonSize(e.rec.progress);
      if (bytes > maxBytes && out.length > 0) break;
      out.push(shardedView(this, e));
    }
    return i < names.length ? { resources: out, next: out[out.length - 1]!.name } : { resources: out };
  }

  loads(): WorkerLoad[] {
    return [...this.workers.values()]
      .map((w) => ({
        id: w.id,
        capacity: w.capacity,
        resources: w.assigned,
        kinds: [...w.kinds].sort(),
        labels: { ...w.labels },
        cordoned: w.cordoned,
        draining: w.draining,
      }))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }
}

function jsonSize(v: unknown): number {
  return v === undefined ? 0 : JSON.stringify(v).length;
}
