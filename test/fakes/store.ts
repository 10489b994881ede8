// MemStore: an in-memory Store with etcd's semantics where gaffer relies on
// them: one revision per transaction, create and mod revisions, fenced and
// chained transactions, watches that replay from a revision and report every
// change in order, and leases that expire on the (fake) clock and take their
// keys with them. Tests can make the next operations fail, hang, or apply in
// another order.

import { NotLeaderError, UnavailableError } from '#protocol/errors.js';
import { ChainBrokenError, type ChainLink, type Guard, type KV, type Op, type Snapshot, type Store, type WatchEvent } from '#platform/ports.js';
import type { Clock, Timer } from '#platform/clock.js';

interface Lease {
  ttl: number;
  timer: Timer;
}

interface Watcher {
  prefix: string;
  onEvents: (events: WatchEvent[], revision: number) => void;
  onReset: (err: Error) => void;
  closed: boolean;
}

/** A hook decides what happens to one transaction before it applies. */
export type TxnHook = (ops: Op[], link: ChainLink | undefined) => Promise<void> | void;

export class MemStore implements Store {
  readonly kv = new Map<string, KV>();
  revision = 1;
  private readonly history: Array<{ revision: number; events: WatchEvent[] }> = [];
  private readonly leases = new Map<string, Lease>();
  private readonly watchers: Watcher[] = [];
  private nextLease = 0x100;
  /** Every transaction that applied, in order: its revision and ops. */
  readonly applied: Array<{ revision: number; ops: Op[] }> = [];
  /** Runs before each transaction applies; throw to fail it, await to delay it. */
  txnHook: TxnHook | undefined;
  /** Decides each keepalive: a TTL, an error, or a promise that never settles. */
  keepAliveHook: ((lease: string) => Promise<number> | number) | undefined;
  closed = false;

  constructor(private readonly clock: Clock) {}

  async range(prefix: string, revision?: number, opts: { keysOnly?: boolean } = {}): Promise<Snapshot> {
    if (revision !== undefined && revision !== this.revision) {
      // Only what a test needs: reading at the current revision, or reconstructing an older one is refused.
      throw new Error(`MemStore reads only at the current revision (${this.revision}), not ${revision}`);
    }
    const kvs = [...this.kv.values()]
      .filter((kv) => kv.key.startsWith(prefix))
      .sort((a, b) => (a.key < b.key ? -1 : 1))
      .map((kv) => (opts.keysOnly ? { ...kv, value: new Uint8Array() } : kv));
    return { kvs, revision: this.revision };
  }

  async txn(guard: Guard | undefined, ops: Op[], link?: ChainLink): Promise<number> {
    if (this.txnHook) await this.txnHook(ops, link);
    if (guard && this.kv.get(guard.key)?.createRevision !== guard.createRevision) {
      throw new NotLeaderError(`fence failed: ${guard.key} is no longer at create revision ${guard.createRevision}`);
    }
    if (link) {
      const cur = this.kv.get(link.key)?.value;
      const ok = link.expect === undefined ? cur === undefined : cur !== undefined && Buffer.compare(Buffer.from(cur), Buffer.from(link.expect)) === 0;
      // As etcd's store does: a copy of a transaction that already applied finds its own next value.
      if (!ok && link.next && cur !== undefined && Buffer.compare(Buffer.from(cur), Buffer.from(link.next)) === 0) return this.kv.get(link.key)!.modRevision;
      if (!ok) throw new ChainBrokenError(`chain ${link.key} moved on`, cur, this.kv.get(link.key)?.modRevision);
    }
    const all: Op[] = [...ops];
    if (link?.next) all.push({ put: link.key, value: link.next });
    if (all.length === 0) return this.revision;
    const rev = ++this.revision;
    const events = all.map((op) => this.apply(op, rev)).filter((e): e is WatchEvent => e !== undefined);
    this.applied.push({ revision: rev, ops });
    this.publish(rev, events);
    return rev;
  }

  private apply(op: Op, rev: number): WatchEvent | undefined {
    if ('put' in op) {
      const prev = this.kv.get(op.put);
      if (op.lease && op.lease !== '0' && !this.leases.has(op.lease)) throw new UnavailableError(`lease ${op.lease} not found`);
      const kv: KV = { key: op.put, value: op.value, createRevision: prev?.createRevision ?? rev, modRevision: rev, lease: op.lease ?? '0' };
      this.kv.set(op.put, kv);
      return { type: 'put', kv, ...(prev ? { prev } : {}) };
    }
    const prev = this.kv.get(op.del);
    if (!prev) return undefined;
    this.kv.delete(op.del);
    return { type: 'delete', kv: { ...prev, value: new Uint8Array(), modRevision: rev }, prev };
  }

  private publish(rev: number, events: WatchEvent[]): void {
    if (events.length === 0) return;
    this.history.push({ revision: rev, events });
    for (const w of this.watchers) {
      if (w.closed) continue;
      const mine = events.filter((e) => e.kv.key.startsWith(w.prefix));
      if (mine.length > 0) queueMicrotask(() => !w.closed && w.onEvents(mine, rev));
    }
  }

  watch(prefix: string, fromRevision: number, onEvents: Watcher['onEvents'], onReset: Watcher['onReset']): { close(): Promise<void> } {
    const w: Watcher = { prefix, onEvents, onReset, closed: false };
    for (const h of this.history) {
      if (h.revision < fromRevision) continue;
      const mine = h.events.filter((e) => e.kv.key.startsWith(prefix));
      if (mine.length > 0) queueMicrotask(() => !w.closed && onEvents(mine, h.revision));
    }
    this.watchers.push(w);
    return { close: async () => void (w.closed = true) };
  }

  /** reset cancels every open watch as etcd does after a compaction. */
  resetWatches(): void {
    for (const w of this.watchers.splice(0)) {
      if (w.closed) continue;
      w.closed = true;
      w.onReset(new Error('Watcher canceled'));
    }
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    const id = String(++this.nextLease);
    this.leases.set(id, { ttl: ttlSeconds, timer: this.clock.after(ttlSeconds * 1000, () => this.expire(id)) });
    return id;
  }

  async keepAlive(lease: string): Promise<number> {
    if (this.keepAliveHook) {
      const ttl = await this.keepAliveHook(lease);
      if (!(ttl > 0)) return 0;
    }
    const l = this.leases.get(lease);
    if (!l) return 0;
    l.timer.cancel();
    l.timer = this.clock.after(l.ttl * 1000, () => this.expire(lease));
    return l.ttl;
  }

  async revokeLease(lease: string): Promise<void> {
    this.expire(lease);
  }

  forgetLease(): void {}

  /** expire ends a lease now, deleting its keys in one revision. */
  expire(lease: string): void {
    const l = this.leases.get(lease);
    if (!l) return;
    l.timer.cancel();
    this.leases.delete(lease);
    const keys = [...this.kv.values()].filter((kv) => kv.lease === lease).map((kv) => kv.key);
    if (keys.length === 0) return;
    const rev = ++this.revision;
    this.publish(rev, keys.map((k) => this.apply({ del: k }, rev)!));
  }

  hasLease(lease: string): boolean {
    return this.leases.has(lease);
  }

  close(): void {
    this.closed = true;
  }
}
