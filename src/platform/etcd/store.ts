// EtcdStore is the Store port on etcd3: bounded call deadlines, no circuit
// breaker, consistent paginated snapshots, fenced transactions, watches that
// tell their owner to re-read when etcd has compacted their revision away
// (or refused them), and lease keepalives on one stream per lease. It is the
// only code that touches the etcd3 client. TLS and etcd's RBAC (a user and
// password) are options.

import { Etcd3, isRecoverableError, type ICompare, type IKeyValue, type IRequestOp, type IWatchResponse } from 'etcd3';
import { handleWhen, noop, retry } from 'cockatiel';
import { NotLeaderError, UnavailableError } from '#protocol/errors.js';
import { keys } from '#protocol/keys.js';
import { logger } from '../log.js';
import type { EtcdAuth } from '../config.js';
import type { EtcdTls } from './tls.js';
import { ChainBrokenError, MAX_TXN_OPS, type ChainLink, type Guard, type KV, type Op, type RangeOptions, type Snapshot, type Store, type WatchEvent } from '../ports.js';
import { withRetry } from '../retry.js';

export interface StoreOptions {
  timeoutMs: number;
  tls?: EtcdTls;
  /** Log in as this etcd user (etcd auth on). */
  auth?: EtcdAuth;
  /**
   * connect proves etcd answers by reading one key under this prefix
   * (default `gaffer/`): with RBAC, a prefix this identity may read.
   */
  probePrefix?: string;
}

/** How long a broken watch stream waits before it is opened again: doubling from the first to the last. */
const WATCH_RETRY_MS = { first: 100, max: 2000 };

const PAGE = 5000;
/** A page asked again (RangeOptions.pageRetries) waits this long first, doubling. */
const PAGE_RETRY = { initialMs: 250, maxMs: 2000 };

function isCompacted(err: unknown): boolean {
  return err instanceof Error && /compacted/i.test(err.message);
}

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

export function unavailable(err: unknown, what: string): UnavailableError {
  const msg = err instanceof Error ? err.message : String(err);
  return new UnavailableError(`etcd ${what} failed: ${msg}`, { cause: err });
}

type KeepaliveStream = Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>>;

/** One keepalive stream per lease, with at most one keepalive in flight on it. */
interface Keeper {
  stream: KeepaliveStream | undefined;
  waiter: { resolve(ttl: number): void; reject(e: Error): void } | undefined;
}

export class EtcdStore implements Store {
  private readonly client: Etcd3;
  private readonly keepers = new Map<string, Keeper>();

  private constructor(readonly endpoints: string[], private readonly opts: StoreOptions) {
    const tls = opts.tls;
    this.client = new Etcd3({
      hosts: endpoints,
      // grpc's createSsl takes an absent CA as "the system's"; etcd3's type insists on one.
      ...(tls ? { credentials: { rootCertificate: tls.ca as Buffer, ...(tls.key ? { privateKey: tls.key } : {}), ...(tls.cert ? { certChain: tls.cert } : {}) } } : {}),
      // etcd3 logs in before its first call and again when etcd says the token is no longer valid.
      ...(opts.auth ? { auth: { username: opts.auth.username, password: opts.auth.password } } : {}),
      // Unary calls get a deadline so a lost quorum fails fast; streams (watch,
      // keepalive) live as long as they are needed.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + opts.timeoutMs }),
      faultHandling: {
        // The default per-host circuit breaker keeps failing calls for ~5 s after
        // etcd is back; we prefer to try again at once.
        host: () => noop,
        global: retry(handleWhen(isRecoverableError), { maxAttempts: Math.max(1, endpoints.length - 1) }),
      },
      grpcOptions: {
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
        // Pings find a dead member under a stream (a watch, a keepalive)
        // within 8 s. Only while calls are open: etcd (grpc-go, with its
        // default enforcement) counts every ping on a connection without
        // streams as abuse and closes it after three (GOAWAY "too many
        // pings"), which with several endpoints hit the idle connections of
        // every process, each logging "excess pings" and reconnecting.
        'grpc.keepalive_time_ms': 6000,
        'grpc.keepalive_timeout_ms': 2000,
        'grpc.keepalive_permit_without_calls': 0,
      },
    });
  }

  /**
   * connect opens a client and proves etcd answers within the call deadline,
   * and, with auth, that the login works and may read `probePrefix`.
   */
  static async connect(endpoints: string[], opts: StoreOptions): Promise<EtcdStore> {
    const store = new EtcdStore(endpoints, opts);
    const probe = opts.probePrefix ?? keys.root;
    try {
      await store.client.kv.range({ key: Buffer.from(probe), range_end: prefixEnd(probe), limit: 1, keys_only: true });
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
  async range(prefix: string, revision?: number, opts: RangeOptions = {}): Promise<Snapshot> {
    const end = prefixEnd(prefix);
    const kvs: KV[] = [];
    let key = Buffer.from(prefix);
    let rev = revision ?? 0;
    try {
      for (;;) {
        const page = { key, range_end: end, limit: PAGE, revision: rev, keys_only: opts.keysOnly ?? false };
        const res = await withRetry(() => this.client.kv.range(page), {
          ...PAGE_RETRY,
          maxAttempts: 1 + (opts.pageRetries ?? 0),
          // A compacted revision is gone for good: the read must start again at a new one.
          retryable: (err) => !isCompacted(err),
        });
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
   * what keeps pipelined transactions in order. Returns the commit revision,
   * also when a copy of this transaction already applied (the chain then
   * holds exactly what it writes): a lost answer is not a broken chain.
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
    // And the chain link's key, to say what it held instead.
    if (link) failure.push({ request_range: { key: Buffer.from(link.key) } });
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
      const chainKv = res.responses[guard ? 1 : 0]?.response_range?.kvs[0];
      const held = chainKv?.value;
      // Our own next value: this very transaction applied, and its answer was
      // lost (the client then sent it again). The chain key's revision is the
      // transaction's, since nothing wrote the chain after it.
      if (link?.next && held && Buffer.compare(Buffer.from(held), Buffer.from(link.next)) === 0) return Number(chainKv!.mod_revision);
      const text = (v: Uint8Array | undefined | null): string => (v ? JSON.stringify(Buffer.from(v).toString('utf8')) : 'nothing');
      throw new ChainBrokenError(`chain ${link?.key} moved on; an earlier transaction did not apply first (expected ${text(link?.expect)}, found ${text(held)})`, held ?? undefined, chainKv ? Number(chainKv.mod_revision) : undefined);
    }
    return Number(res.header.revision);
  }

  /**
   * watch delivers every change under prefix from `fromRevision` on, in
   * order, one response at a time, on a gRPC stream of its own. A stream that
   * breaks (etcd restarted, a member lost) is opened again from the revision
   * after the last event delivered. When etcd cancels the watch, onReset fires
   * once and the owner must re-read and watch again: its revision was
   * compacted away, or etcd refused to start it (with auth on: the login token
   * expired or was lost in a restart; the owner's re-read logs in again).
   *
   * One stream per watch rather than etcd3's shared watch stream: on that one,
   * a watch refused at creation leaves every later watch on the stream waiting
   * for good (etcd3 1.1.2), and the stream keeps the token it was opened with.
   */
  watch(
    prefix: string,
    fromRevision: number,
    onEvents: (events: WatchEvent[], revision: number) => void,
    onReset: (err: Error) => void,
    opts: { prev?: boolean } = {},
  ): { close(): Promise<void>; resumesFrom(): number } {
    type WatchStream = Awaited<ReturnType<Etcd3['watchClient']['watch']>>;
    const log = logger().child({ component: 'watch', prefix });
    const key = Buffer.from(prefix);
    const rangeEnd = prefixEnd(prefix);
    let next = fromRevision;
    let stream: WatchStream | undefined;
    let closed = false;
    let timer: NodeJS.Timeout | undefined;
    let retryMs = WATCH_RETRY_MS.first;

    // Ending our side first keeps etcd3 from taking the cancel for a failed host.
    const end = (s: WatchStream): void => {
      s.on('error', () => undefined);
      try {
        s.end();
        s.cancel();
      } catch {
        // already gone
      }
    };
    const drop = (): void => {
      clearTimeout(timer);
      const s = stream;
      stream = undefined;
      if (s) end(s);
    };
    const reset = (err: Error): void => {
      if (closed) return;
      closed = true;
      drop();
      log.warn({ err: err.message }, 'watch canceled by etcd; owner re-reads');
      onReset(err);
    };
    const reopen = (err: Error): void => {
      if (closed) return;
      drop();
      log.debug({ err: err.message, from: next }, 'watch disconnected; resuming');
      timer = setTimeout(() => void open(), retryMs);
      retryMs = Math.min(retryMs * 2, WATCH_RETRY_MS.max);
    };
    const open = async (): Promise<void> => {
      let s: WatchStream;
      try {
        s = await this.client.watchClient.watch();
      } catch (err) {
        return reopen(err as Error);
      }
      if (closed) return end(s);
      stream = s;
      s.on('data', (res: IWatchResponse) => {
        if (stream !== s) return;
        if (res.canceled) {
          const compacted = res.compact_revision && res.compact_revision !== '0' ? `revision ${next} compacted (now ${res.compact_revision})` : '';
          return reset(new Error(`watch canceled: ${res.cancel_reason || compacted || 'by etcd'}`));
        }
        retryMs = WATCH_RETRY_MS.first;
        if (res.events.length === 0) {
          // A progress notice (--experimental-watch-progress-notify-interval):
          // every event up to its revision has been sent on this watch, so a
          // quiet watch resumes from there, not from a revision compaction
          // has since removed. (Not the reply to create: events before its
          // revision may still be on their way.)
          if (!res.created) next = Math.max(next, Number(res.header.revision) + 1);
          return;
        }
        const events = res.events.map((e) => {
          const ev: WatchEvent = { type: e.type === 'Put' ? 'put' : 'delete', kv: toKV(e.kv) };
          if (e.prev_kv) ev.prev = toKV(e.prev_kv);
          return ev;
        });
        next = events[events.length - 1]!.kv.modRevision + 1;
        onEvents(events, Number(res.header.revision));
      });
      s.on('error', (err: Error) => stream === s && reopen(err));
      s.on('end', () => stream === s && reopen(new Error('watch stream ended')));
      s.write({ create_request: { key, range_end: rangeEnd, start_revision: String(next), prev_kv: opts.prev ?? true, progress_notify: true } });
    };
    void open();
    return {
      close: async () => {
        closed = true;
        drop();
      },
      /** The revision the watch would resume from after a disconnect. */
      resumesFrom: () => next,
    };
  }

  /** compact discards history up to revision (an operator's job; tests use it to cancel watches). */
  async compact(revision: number): Promise<void> {
    await this.client.kv.compact({ revision, physical: true });
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    try {
      return String((await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 })).ID);
    } catch (err) {
      throw unavailable(err, 'lease grant');
    }
  }

  async revokeLease(lease: string): Promise<void> {
    this.dropKeeper(lease);
    try {
      await this.client.leaseClient.leaseRevoke({ ID: lease });
    } catch (err) {
      throw unavailable(err, 'lease revoke');
    }
  }

  /**
   * keepAlive sends one keepalive on a stream kept open across calls (one
   * gRPC stream per lease, not one per beat: a thousand workers would
   * otherwise open thousands of streams a second). Callers keep one call in
   * flight per lease, so the next response is this call's; a call that times
   * out drops the stream, so no late answer can be taken for a newer one.
   */
  async keepAlive(lease: string, timeoutMs: number): Promise<number> {
    const k = this.keepers.get(lease) ?? { stream: undefined, waiter: undefined };
    this.keepers.set(lease, k);
    let stream: KeepaliveStream;
    try {
      stream = k.stream ?? (k.stream = await this.openStream(lease, k));
    } catch (err) {
      throw unavailable(err, 'lease keepalive');
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.dropStream(k);
        reject(new UnavailableError('keepalive got no answer in time'));
      }, timeoutMs);
      k.waiter = {
        resolve: (ttl) => (clearTimeout(timer), resolve(ttl)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
      stream.write({ ID: lease });
    });
  }

  private async openStream(lease: string, k: Keeper): Promise<KeepaliveStream> {
    const stream = await this.client.leaseClient.leaseKeepAlive();
    const fail = (err?: Error) => {
      if (k.stream === stream) k.stream = undefined;
      const w = k.waiter;
      k.waiter = undefined;
      w?.reject(unavailable(err ?? new Error('keepalive stream ended'), `lease ${lease} keepalive`));
    };
    stream.on('data', (res: { TTL: string }) => {
      const w = k.waiter;
      k.waiter = undefined;
      w?.resolve(Number(res.TTL));
    });
    stream.on('error', fail);
    stream.on('end', () => fail());
    return stream;
  }

  private dropStream(k: Keeper): void {
    const stream = k.stream;
    k.stream = undefined;
    k.waiter = undefined;
    try {
      stream?.cancel();
    } catch {
      // already gone
    }
  }

  forgetLease(lease: string): void {
    this.dropKeeper(lease);
  }

  private dropKeeper(lease: string): void {
    const k = this.keepers.get(lease);
    if (k) this.dropStream(k);
    this.keepers.delete(lease);
  }

  close(): void {
    for (const lease of [...this.keepers.keys()]) this.dropKeeper(lease);
    this.client.close();
  }
}
