// ResourceIndex is a read's resources in the form a new leader's state takes
// over as it is: each record decoded once into the core's Entry, the names
// grouped by the worker each record names (a live worker's group becomes its
// name set), and the assignment keys that exist, grouped the same way. A
// read of etcd (loader.ts) fills one key by key, and a warm standby
// (standby.ts) keeps one current from its watch, so a takeover inserts
// nothing into a million-entry map: at 1M resources, building those maps
// and hashing a fresh assignment key per resource took 3.8-4.7 s of the
// takeover (bench/standby-build.ts).

import { parseKey } from '#protocol/keys.js';
import { decodeRecord } from '#protocol/stored.js';
import type { KV } from '#platform/ports.js';
import type { MoveReason } from '#protocol/messages.js';
import type { Entry } from './core/records.js';

/** The group of resources whose record names no worker. */
export const NO_WORKER = '';

export class ResourceIndex {
  /** Every well-formed resource by name, as its record says: `assign` is what the record claims, `handoff` as stored. */
  readonly entries = new Map<string, Entry>();
  /** Names by the worker each record names (NO_WORKER for none). */
  readonly byWorker = new Map<string, Set<string>>();
  /** Names whose assignment key exists, by the worker it is under. */
  readonly assigned = new Map<string, Set<string>>();
  /** Records that did not decode, by key. */
  readonly malformed = new Map<string, Error>();

  /** putResource indexes a resource record (a key that names no resource is ignored). */
  putResource(kv: KV): void {
    const name = parseKey.resource(kv.key);
    if (!name) return;
    this.drop(name, kv.key);
    let decoded: ReturnType<typeof decodeRecord>;
    try {
      decoded = decodeRecord(kv.value);
      if (decoded.rec.name !== name) throw new Error(`the record names ${JSON.stringify(decoded.rec.name)}, not the resource of its key`);
    } catch (err) {
      this.malformed.set(kv.key, err instanceof Error ? err : new Error(String(err)));
      return;
    }
    const { rec, epoch, handoff } = decoded;
    const e: Entry = {
      rec,
      revision: kv.modRevision,
      assign:
        rec.worker && epoch !== undefined
          ? { worker: rec.worker, epoch, attempt: rec.attempt, ...(rec.delayMs ? { delayMs: rec.delayMs } : {}), ...(rec.checkpoint ? { checkpoint: true } : {}) }
          : undefined,
    };
    if (handoff) e.handoff = { from: { worker: handoff.worker, epoch: handoff.epoch, attempt: handoff.attempt }, reason: handoff.reason as MoveReason };
    this.entries.set(name, e);
    add(this.byWorker, rec.worker ?? NO_WORKER, name);
  }

  deleteResource(key: string): void {
    const name = parseKey.resource(key);
    if (name) this.drop(name, key);
  }

  /** drop forgets the resource `name` under `key`. */
  private drop(name: string, key: string): void {
    this.malformed.delete(key);
    const old = this.entries.get(name);
    if (!old) return;
    this.entries.delete(name);
    remove(this.byWorker, old.rec.worker ?? NO_WORKER, name);
  }

  putAssignment(key: string): void {
    const k = parseKey.assignment(key);
    if (k) add(this.assigned, k.workerId, k.name);
  }

  deleteAssignment(key: string): void {
    const k = parseKey.assignment(key);
    if (k) remove(this.assigned, k.workerId, k.name);
  }
}

function add(groups: Map<string, Set<string>>, group: string, name: string): void {
  const set = groups.get(group);
  if (set) set.add(name);
  else groups.set(group, new Set([name]));
}

function remove(groups: Map<string, Set<string>>, group: string, name: string): void {
  const set = groups.get(group);
  if (!set) return;
  set.delete(name);
  if (set.size === 0) groups.delete(group);
}
