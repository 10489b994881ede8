// Store wraps etcd3 for gaffer: bounded call deadlines, no circuit breaker,
// consistent paginated snapshots, fenced transactions, and watches that tell
// their owner to re-read when etcd has compacted their revision away.

import { Etcd3, type ICompare, type IKeyValue, type IRequestOp, type IWatchResponse, type Watcher } from 'etcd3';
import { ExponentialBackoff, handleWhen, noop, retry } from 'cockatiel';
import { NotLeaderError, UnavailableError } from './errors.js';
import { logger } from './log.js';

export interface KV {
  key: string;
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
  lease: string;
}

export type Op = { put: string; value: Uint8Array; lease?: string } | { del: string };

/** ChainLink orders pipelined transactions: each checks the value the one before it wrote. */
export interface ChainLink {
  key: string;
  /** What the previous link wrote; undefined if the key must not exist yet. */
  expect: Uint8Array | undefined;
  /** What this link writes; undefined for a read-only check that leaves the chain as it is. */
  next?: Uint8Array;
}

/** ChainBrokenError: the transaction was certainly not applied, because the one before it was not (yet). */
export class ChainBrokenError extends Error {
  override name = 'ChainBrokenError';
}

/** Guard fences a transaction on one key's create revision (the election key of the leader). */
export interface Guard {
  key: string;
  createRevision: number;
}

export interface Snapshot {
  kvs: KV[];
  revision: number;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KV;
  prev?: KV;
}

export interface StoreOptions {
  timeoutMs: number;
}

/** The etcd server rejects transactions with more operations than this (--max-txn-ops). */
export const MAX_TXN_OPS = 128;
const PAGE = 5000;

function toKV(kv: IKeyValue): KV {
  return {
    key: kv.key.toString(),
    value: kv.value ?? Buffer.alloc(0),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    lease: String(kv.lease ?? '0'),
  };
}

function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function recoverable(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : '';
  // grpc UNAVAILABLE / connection resets: worth one more host before giving up.
  return /UNAVAILABLE|ECONNREFUSED|ECONNRESET|No connection established|GOAWAY/i.test(msg);
}

export function unavailable(err: unknown, what: string): UnavailableError {
  const msg = err instanceof Error ? err.message : String(err);
  return new UnavailableError(`etcd ${what} failed: ${msg}`, { cause: err });
}

export class Store {
  readonly client: Etcd3;

  private constructor(readonly endpoints: string[], private readonly opts: StoreOptions) {
    this.client = new Etcd3({
      hosts: endpoints,
      // Unary calls get a deadline so a lost quorum fails fast; streams (watch,
      // keepalive) live as long as they are needed.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + opts.timeoutMs }),
      faultHandling: {
        // The default per-host circuit breaker keeps failing calls for ~5 s after
        // etcd is back; we prefer to try again at once.
        host: () => noop,
        global: retry(handleWhen(recoverable), { maxAttempts: Math.max(1, endpoints.length - 1) }),
        // The manager calls next() on this before its first use, as on the default.
        watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }) as never,
      },
      grpcOptions: {
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
        'grpc.keepalive_time_ms': 6000,
        'grpc.keepalive_timeout_ms': 2000,
        'grpc.keepalive_permit_without_calls': 1,
      },
    });
  }

  /** connect opens a client and proves etcd answers within the call deadline. */
  static async connect(endpoints: string[], opts: StoreOptions): Promise<Store> {
    const store = new Store(endpoints, opts);
    try {
      await store.client.kv.range({ key: Buffer.from('gaffer/'), limit: 1 });
    } catch (err) {
      store.close();
      throw unavailable(err, `connect to ${endpoints.join(',')}`);
    }
    return store;
  }

  get timeoutMs(): number {
    return this.opts.timeoutMs;
  }

  /** range reads every key under prefix at one revision, page by page, so large sets stay consistent. */
  async range(prefix: string, revision?: number, opts: { keysOnly?: boolean } = {}): Promise<Snapshot> {
    const end = prefixEnd(prefix);
    const kvs: KV[] = [];
    let key = Buffer.from(prefix);
    let rev = revision ?? 0;
    try {
      for (;;) {
        const res = await this.client.kv.range({ key, range_end: end, limit: PAGE, revision: rev, keys_only: opts.keysOnly ?? false });
        // Let timers (lease keepalives above all) run between pages of a large read.
        await new Promise((r) => setImmediate(r));
        if (rev === 0) rev = Number(res.header.revision);
        for (const kv of res.kvs) kvs.push(toKV(kv));
        if (!res.more || res.kvs.length === 0) break;
        key = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
      }
    } catch (err) {
      throw unavailable(err, `range ${prefix}`);
    }
    return { kvs, revision: rev };
  }

  /**
   * txn commits ops atomically. With a guard it commits only while the guard
   * key still has the given create revision, and throws NotLeaderError
   * otherwise. With a chain link it also commits only if the link's key
   * still holds the value the previous transaction of the chain wrote (or is
   * absent, for the first), and throws ChainBrokenError otherwise: that is
   * what keeps pipelined transactions in order. Returns the commit revision.
   */
  async txn(guard: Guard | undefined, ops: Op[], link?: ChainLink): Promise<number> {
    if (ops.length > MAX_TXN_OPS) throw new Error(`txn has ${ops.length} ops; etcd allows ${MAX_TXN_OPS}`);
    const success: IRequestOp[] = ops.map((op) =>
      'put' in op
        ? { request_put: { key: Buffer.from(op.put), value: Buffer.from(op.value), lease: op.lease ?? '0' } }
        : { request_delete_range: { key: Buffer.from(op.del) } },
    );
    const compare: ICompare[] = [];
    if (guard) {
      compare.push({ key: Buffer.from(guard.key), target: 'Create', result: 'Equal', create_revision: guard.createRevision });
    }
    if (link) {
      const key = Buffer.from(link.key);
      compare.push(
        link.expect === undefined
          ? { key, target: 'Version', result: 'Equal', version: 0 }
          : { key, target: 'Value', result: 'Equal', value: Buffer.from(link.expect) },
      );
      if (link.next) success.push({ request_put: { key, value: Buffer.from(link.next) } });
    }
    // On failure, read the guard key back to tell a lost fence from a broken chain.
    const failure: IRequestOp[] = guard ? [{ request_range: { key: Buffer.from(guard.key) } }] : [];
    let res;
    try {
      res = await this.client.kv.txn({ compare, success, failure });
    } catch (err) {
      throw unavailable(err, 'txn');
    }
    if (!res.succeeded) {
      const kv = res.responses[0]?.response_range?.kvs[0];
      if (guard && Number(kv?.create_revision ?? 0) !== guard.createRevision) {
        throw new NotLeaderError(`fence failed: ${guard.key} is no longer at create revision ${guard.createRevision}`);
      }
      throw new ChainBrokenError(`chain ${link?.key} moved on; an earlier transaction did not apply first`);
    }
    return Number(res.header.revision);
  }

  /**
   * watch delivers every change under prefix from `fromRevision` on, in
   * order, one response at a time. The library resumes after a disconnect by
   * itself; when etcd cancels the watch (its revision was compacted) onReset
   * fires once and the owner must re-read and watch again.
   */
  watch(
    prefix: string,
    fromRevision: number,
    onEvents: (events: WatchEvent[], revision: number) => void,
    onReset: (err: Error) => void,
  ): { close(): Promise<void> } {
    let watcher: Watcher | undefined;
    let closed = false;
    const log = logger().child({ component: 'watch', prefix });
    this.client
      .watch()
      .prefix(prefix)
      .startRevision(String(fromRevision))
      .withPreviousKV()
      .create()
      .then((w) => {
        watcher = w;
        if (closed) return void w.cancel().catch(() => undefined);
        w.on('data', (res: IWatchResponse) => {
          if (closed || res.events.length === 0) return;
          const events = res.events.map((e) => {
            const ev: WatchEvent = { type: e.type === 'Put' ? 'put' : 'delete', kv: toKV(e.kv) };
            if (e.prev_kv) ev.prev = toKV(e.prev_kv);
            return ev;
          });
          onEvents(events, Number(res.header.revision));
        });
        w.on('error', (err: Error) => {
          if (closed) return;
          closed = true;
          log.warn({ err: err.message }, 'watch canceled by etcd; owner re-reads');
          w.cancel().catch(() => undefined);
          onReset(err);
        });
        w.on('disconnected', (err: Error) => log.debug({ err: err?.message }, 'watch disconnected; resuming'));
      })
      .catch((err: Error) => {
        if (!closed) {
          closed = true;
          onReset(err);
        }
      });
    return {
      close: async () => {
        closed = true;
        await watcher?.cancel().catch(() => undefined);
      },
    };
  }

  close(): void {
    this.client.close();
  }
}
