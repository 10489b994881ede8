// The narrow ports behaviour talks through: a Store (etcd: transactions,
// ranges, watches, leases) and a Bus (NATS: publish, request, subscribe).
// The real adapters are platform/etcd/store.ts and platform/nats/bus.ts;
// unit tests use in-memory ones (test/fakes/). Together with the Clock
// (clock.ts) they are everything an actor needs from outside its process.

import type { MsgHdrs } from 'nats';

// --- Store -------------------------------------------------------------------

export interface KV {
  key: string;
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
  lease: string;
}

export type Op = { put: string; value: Uint8Array; lease?: string } | { del: string };

/** Guard fences a transaction on one key's create revision (the election key of the leader). */
export interface Guard {
  key: string;
  createRevision: number;
}

/** ChainLink orders pipelined transactions: each checks the value the one before it wrote. */
export interface ChainLink {
  key: string;
  /** What the previous link wrote; undefined if the key must not exist yet. */
  expect: Uint8Array | undefined;
  /** What this link writes; undefined for a read-only check that leaves the chain as it is. */
  next?: Uint8Array;
}

/**
 * ChainBrokenError: this copy of the transaction was not applied, because the
 * chain key did not hold what it expected. `held` is what it held instead, at
 * `heldRevision`: a writer whose earlier copy's answer was lost reads there
 * whether that copy applied and later links went on from it.
 */
export class ChainBrokenError extends Error {
  override name = 'ChainBrokenError';
  constructor(
    message: string,
    readonly held?: Uint8Array,
    readonly heldRevision?: number,
  ) {
    super(message);
  }
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

export interface RangeOptions {
  keysOnly?: boolean;
  /**
   * A page whose call failed (a deadline on a loaded etcd) is asked again this
   * often, at the same revision, before the whole read fails. For reads of the
   * whole cluster: starting one of half a million records over because one
   * page was late only adds to the load that made it late.
   */
  pageRetries?: number;
}

/** The etcd server rejects transactions with more operations than this (--max-txn-ops). */
export const MAX_TXN_OPS = 128;

export interface Store {
  /** range reads every key under prefix at one revision (the latest when omitted). */
  range(prefix: string, revision?: number, opts?: RangeOptions): Promise<Snapshot>;
  /**
   * txn commits ops atomically and returns the commit revision. With a guard
   * it throws NotLeaderError unless the guard key still has its create
   * revision; with a link, ChainBrokenError unless the chain key holds
   * link.expect. Any other failure is UnavailableError: the outcome is unknown.
   */
  txn(guard: Guard | undefined, ops: Op[], link?: ChainLink): Promise<number>;
  /**
   * watch delivers every change under prefix from fromRevision on, in order.
   * onReset fires once if the watch ends for good (its revision was
   * compacted): the owner must re-read and watch again. Events carry the
   * previous value (`prev`) unless opts.prev is false.
   */
  watch(
    prefix: string,
    fromRevision: number,
    onEvents: (events: WatchEvent[], revision: number) => void,
    onReset: (err: Error) => void,
    opts?: { prev?: boolean },
  ): { close(): Promise<void> };
  /** grantLease creates a lease; keys put with it vanish when it expires or is revoked. */
  grantLease(ttlSeconds: number): Promise<string>;
  /** keepAlive renews a lease once and returns its TTL in seconds as the server restarted it (0: the lease is gone). */
  keepAlive(lease: string, timeoutMs: number): Promise<number>;
  /** revokeLease deletes a lease and every key bound to it. */
  revokeLease(lease: string): Promise<void>;
  /** forgetLease drops what keepAlive keeps open for a lease, without revoking it. */
  forgetLease(lease: string): void;
  close(): void;
}

// --- Bus ---------------------------------------------------------------------

export interface BusMsg {
  subject: string;
  data: Uint8Array;
  reply?: string | undefined;
  headers?: MsgHdrs | undefined;
}

/**
 * BusStatus: our own connection went away or came back, or (`cluster`) the
 * server told us a server joined or left its cluster. After a server leaves,
 * peers that were connected to it are reconnecting to another one, and their
 * subscriptions are missing from ours until they have.
 */
export type BusStatus = 'disconnect' | 'reconnect' | 'cluster';

export interface Bus {
  publish(subject: string, data: Uint8Array, opts?: { reply?: string | undefined; headers?: MsgHdrs | undefined }): void;
  /**
   * request sends and waits for one reply. It rejects with NoRespondersError
   * when nobody subscribes (the server says so at once), TimeoutError when no
   * reply comes in time, UnavailableError otherwise.
   */
  request(subject: string, data: Uint8Array, opts: { timeoutMs: number; headers?: MsgHdrs }): Promise<BusMsg>;
  /** subscribe calls fn for each message, in order; a throw in fn is the caller's bug and is swallowed. */
  subscribe(subject: string, fn: (msg: BusMsg) => void, opts?: { queue?: string }): { unsubscribe(): void };
  /** onStatus reports our own connection going away and coming back, and cluster changes; returns a function that stops reporting. */
  onStatus(fn: (s: BusStatus) => void): () => void;
  /** flush resolves once the server has seen everything published so far. */
  flush(): Promise<void>;
  readonly closed: boolean;
}
