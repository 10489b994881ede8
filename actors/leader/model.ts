// ClusterState is the leader's in-memory model of resources and live workers,
// and the planner that turns changes to it into etcd operations. It does no
// I/O, so it is unit-tested directly. Changes are applied optimistically;
// `flush` yields one unit of operations per touched resource (its resource key
// and assignment keys always commit together), and `committed` stamps the
// revision once etcd has them. After any failed commit the leader throws the
// whole state away and reloads it from etcd.

import { v4 as uuidv4 } from 'uuid';
import { keys } from '../../src/protocol/keys.js';
import { packed } from '../../src/protocol/codec.js';
import { pick, type Slot } from './placement.js';
import type { Op } from '../../src/platform/ports.js';
import type { StoredAssignment } from '../../src/protocol/stored.js';
import type { Resource, Spec, WorkerLoad } from '../../src/protocol/messages.js';
import type { StoredResource } from '../../src/protocol/stored.js';

export interface Assignment {
  worker: string;
  /** The worker incarnation (its lease id) this assignment was written for. */
  epoch: string;
}

interface Entry {
  rec: StoredResource;
  revision: number;
  /** The assignment key as it is in etcd (or will be, once flushed). */
  assign: Assignment | undefined;
}

export class WorkerEntry implements Slot {
  readonly names = new Set<string>();
  constructor(readonly id: string, public capacity: number, public epoch: string) {}
  get assigned(): number {
    return this.names.size;
  }
}

/** What a name looked like in etcd before this batch touched it. */
interface Before {
  existed: boolean;
  assign: Assignment | undefined;
}

export interface Unit {
  name: string;
  ops: Op[];
}

/** Move records what a batch did to one resource's placement, for events. */
export type Move = { name: string; id: string; from: string | null; to: string | null; deleted: boolean };

export class ClusterState {
  readonly resources = new Map<string, Entry>();
  readonly workers = new Map<string, WorkerEntry>();
  readonly pending = new Set<string>();
  private readonly dirty = new Map<string, Before>();
  /** Moves made by this batch, for events. */
  moves: Move[] = [];

  /**
   * @param term the fencing token of the leader that owns this model; every
   * record it writes carries it, so an audit can tell who wrote what.
   */
  constructor(private readonly term = 0, private readonly now: () => Date = () => new Date()) {}

  // --- loading -----------------------------------------------------------

  loadWorker(id: string, capacity: number, epoch: string): void {
    this.workers.set(id, new WorkerEntry(id, capacity, epoch));
  }

  /** loadResource adds a resource as etcd has it; call after every loadWorker. */
  loadResource(rec: StoredResource, revision: number, assign: Assignment | undefined): void {
    this.resources.set(rec.name, { rec, revision, assign });
    this.sorted = undefined;
    const w = rec.worker ? this.workers.get(rec.worker) : undefined;
    if (w) w.names.add(rec.name);
    else this.pending.add(rec.name);
  }

  // --- reads -------------------------------------------------------------

  view(name: string): Resource | undefined {
    const e = this.resources.get(name);
    return e && { ...e.rec, revision: e.revision };
  }

  list(): Resource[] {
    return this.page(undefined, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER).resources;
  }

  /**
   * page lists resources in name order after `after`, at most `limit` of
   * them and stopping near `maxBytes` of JSON; `next` is set when more remain.
   */
  page(after: string | undefined, limit: number, maxBytes: number): { resources: Resource[]; next?: string } {
    const names = (this.sorted ??= [...this.resources.keys()].sort(byName));
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
      const e = this.resources.get(names[i]!)!;
      bytes += 200 + e.rec.name.length + JSON.stringify(e.rec.spec).length;
      if (bytes > maxBytes && out.length > 0) break;
      out.push({ ...e.rec, revision: e.revision });
    }
    return i < names.length ? { resources: out, next: out[out.length - 1]!.name } : { resources: out };
  }
  /** Names in order, rebuilt after adds and removes. */
  private sorted: string[] | undefined;

  loads(): WorkerLoad[] {
    return [...this.workers.values()]
      .map((w) => ({ id: w.id, capacity: w.capacity, resources: w.assigned }))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  // --- changes -----------------------------------------------------------

  private touch(name: string): void {
    if (this.dirty.has(name)) return;
    const e = this.resources.get(name);
    this.dirty.set(name, { existed: e !== undefined, assign: e?.assign && { ...e.assign } });
  }

  private setWorker(name: string, e: Entry, to: WorkerEntry | undefined): void {
    const from = e.rec.worker;
    if (from) this.workers.get(from)?.names.delete(name);
    this.pending.delete(name);
    e.rec = { ...e.rec, worker: to?.id ?? null };
    e.assign = to && { worker: to.id, epoch: to.epoch };
    if (to) to.names.add(name);
    else this.pending.add(name);
    const moved = from !== (to?.id ?? null);
    if (moved || e.revision === 0) this.moves.push({ name, id: e.rec.id, from, to: to?.id ?? null, deleted: false });
  }

  /** add creates the resource unless it exists; returns whether it did. */
  add(name: string, spec: Spec): boolean {
    if (this.resources.has(name)) return false;
    this.touch(name);
    const e: Entry = {
      rec: { name, id: uuidv4(), worker: null, spec, createdAt: this.now().toISOString() },
      revision: 0,
      assign: undefined,
    };
    this.resources.set(name, e);
    this.sorted = undefined;
    this.setWorker(name, e, pick(this.workers.values()) as WorkerEntry | undefined);
    return true;
  }

  /** remove deletes the resource; returns what it was, or undefined if unknown. */
  remove(name: string): Resource | undefined {
    const e = this.resources.get(name);
    if (!e) return undefined;
    this.touch(name);
    const view = { ...e.rec, revision: e.revision };
    this.moves.push({ name, id: e.rec.id, from: e.rec.worker, to: null, deleted: true });
    if (e.rec.worker) this.workers.get(e.rec.worker)?.names.delete(name);
    this.pending.delete(name);
    this.resources.delete(name);
    this.sorted = undefined;
    return view;
  }

  /** workerUp records a live worker, re-stamps its assignments if it is a new incarnation, and places pending work. */
  workerUp(id: string, capacity: number, epoch: string): void {
    const w = this.workers.get(id);
    if (!w) {
      this.workers.set(id, new WorkerEntry(id, capacity, epoch));
    } else {
      w.capacity = capacity;
      if (w.epoch !== epoch) {
        w.epoch = epoch;
        for (const name of w.names) {
          const e = this.resources.get(name)!;
          this.touch(name);
          e.assign = { worker: id, epoch };
        }
      }
    }
    this.placePending();
  }

  /** suspend keeps a worker's resources where they are but places nothing new there (we revoked it; it is fencing itself). */
  suspend(id: string): void {
    const w = this.workers.get(id);
    if (w) w.capacity = 0;
  }

  /** workerDown forgets a worker and moves each of its resources to the least-loaded live worker. */
  workerDown(id: string): void {
    const w = this.workers.get(id);
    if (!w) return;
    this.workers.delete(id);
    for (const name of [...w.names]) {
      const e = this.resources.get(name)!;
      this.touch(name);
      this.setWorker(name, e, pick(this.workers.values()) as WorkerEntry | undefined);
    }
  }

  /** placePending places every pending resource that some worker has room for. */
  placePending(): void {
    for (const name of [...this.pending]) {
      const to = pick(this.workers.values()) as WorkerEntry | undefined;
      if (!to) return;
      const e = this.resources.get(name)!;
      this.touch(name);
      this.setWorker(name, e, to);
    }
  }

  /**
   * repair makes etcd agree with the model after a load: assignment keys that
   * are missing, stale (old epoch, wrong worker) or orphaned get rewritten or
   * deleted on the next flush.
   */
  repair(orphanAssignments: Array<{ worker: string; name: string }>): void {
    for (const e of this.resources.values()) {
      const w = e.rec.worker ? this.workers.get(e.rec.worker) : undefined;
      if (e.rec.worker && !w) {
        // Its worker died while no leader watched: it is pending until placed.
        this.touch(e.rec.name);
        this.moves.push({ name: e.rec.name, id: e.rec.id, from: e.rec.worker, to: null, deleted: false });
        e.rec = { ...e.rec, worker: null };
      }
      const want = w && { worker: w.id, epoch: w.epoch };
      if (want?.worker !== e.assign?.worker || want?.epoch !== e.assign?.epoch) {
        this.touch(e.rec.name);
        e.assign = want;
      }
    }
    this.orphans.push(...orphanAssignments);
  }
  private orphans: Array<{ worker: string; name: string }> = [];

  get hasChanges(): boolean {
    return this.dirty.size > 0 || this.orphans.length > 0;
  }

  /** flush returns the operations that make etcd match the model, one unit per resource. */
  flush(): Unit[] {
    const units: Unit[] = [];
    for (const [name, before] of this.dirty) {
      const e = this.resources.get(name);
      const ops: Op[] = [];
      if (e) ops.push({ put: keys.resource(name), value: packed.encode({ ...e.rec, term: this.term, epoch: e.assign?.epoch }) });
      else if (before.existed) ops.push({ del: keys.resource(name) });
      const was = before.assign;
      const now = e?.assign;
      if (was && was.worker !== now?.worker) ops.push({ del: keys.assignment(was.worker, name) });
      if (now) {
        const value: StoredAssignment = { ...e!.rec, epoch: now.epoch, term: this.term };
        ops.push({ put: keys.assignment(now.worker, name), value: packed.encode(value) });
      }
      if (ops.length > 0) units.push({ name, ops });
    }
    // An orphan key that this flush writes anyway needs no delete (and etcd
    // rejects a transaction that names one key twice).
    const written = new Set(units.flatMap((u) => u.ops.map((op) => ('put' in op ? op.put : op.del))));
    for (const o of this.orphans.splice(0)) {
      const key = keys.assignment(o.worker, o.name);
      if (!written.has(key)) units.push({ name: o.name, ops: [{ del: key }] });
    }
    this.dirty.clear();
    return units;
  }

  /** committed stamps the revision etcd gave the units' resources. */
  committed(names: Iterable<string>, revision: number): void {
    for (const name of names) {
      const e = this.resources.get(name);
      if (e) e.revision = revision;
    }
  }

  takeMoves(): Move[] {
    const m = this.moves;
    this.moves = [];
    return m;
  }
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** chunk packs units into transactions of at most maxOps operations, never splitting a unit. */
export function chunk(units: Unit[], maxOps: number): Unit[][] {
  const out: Unit[][] = [];
  let cur: Unit[] = [];
  let n = 0;
  for (const u of units) {
    if (n + u.ops.length > maxOps && cur.length > 0) {
      out.push(cur);
      cur = [];
      n = 0;
    }
    cur.push(u);
    n += u.ops.length;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}
