// What goes into a batch and what comes out of it. Input is one thing a batch
// handles; Tick is everything the core would otherwise read from the world
// (the clock, ids, randomness), given by the shell so that a batch is a pure
// function of the state and its input; Plan is the one output.

import type { EventKind, EventPayloads } from '#protocol/events.js';
import type { ClientRequest } from '#protocol/request.js';
import type { Outcome } from '#protocol/outcomes.js';
import type { Changes, HandoffChange } from './change-log.js';
import type { ShardProbe } from './shards.js';

export interface RebalanceLimits {
  /** Most moves in one round (--rebalance-max). */
  max: number;
  /** Most moves in one round as a fraction of all resources. */
  fraction: number;
}

/** Input is one thing a batch handles; the Leader turns watch events and client messages into these. */
export type Input =
  | { kind: 'client'; req: ClientRequest }
  | { kind: 'worker-up'; id: string; capacity: number; epoch: string; kinds: string[]; labels: Record<string, string> }
  /** Time for a rebalance round (the leader paces them). */
  | { kind: 'rebalance'; limits: RebalanceLimits }
  /** A handoff's old owner has certainly stopped (it is fenced or gone): let the new owner start. */
  | { kind: 'release'; name: string; attempt: number }
  /** What a worker says it runs (asked after a load, since "running" is known only in memory). */
  | { kind: 'running'; worker: string; tasks: Array<{ name: string; id: string; attempt: number }> }
  /**
   * The worker's lease is gone: its work moves now. When we revoked it
   * ourselves it may still run its tasks until fencedBy (clock time), and
   * its work starts elsewhere only after that.
   */
  | { kind: 'worker-down'; id: string; fencedBy?: number }
  /** Nothing to do but repair and place what is pending (after a load, or with a backlog). */
  | { kind: 'reconcile' }
  /** The shell's answer to a ShardProbe: items waiting in each queue of a sharded resource (undefined: could not count). */
  | { kind: 'shard-queues'; name: string; id: string; token: string; queued: number[] | undefined }
  /** A schedule's fire time has come (the shell's timer for Plan.wakeAt). */
  | { kind: 'tick' };

/** Tick is the world as a batch sees it, given by the shell (tests give deterministic ones). */
export interface Tick {
  /** The leader's clock (clock.now()) as the batch is planned: fence waits count from it. */
  now: number;
  /** Wall-clock time as an ISO string, for createdAt and checkpoint stamps. */
  wall: string;
  /** A new resource id. */
  newId(): string;
  /** A number in [0, 1), for backoff jitter. */
  random(): number;
}

export interface PlanContext extends Tick {
  leaderId: string;
  /** The leader's term (fencing token). */
  term: number;
  /** Every master in the election, leader first. */
  members: string[];
  /** Overrides BATCH_BUDGET (tests). */
  budget?: number;
  /** Most resources the batch's work that can wait may touch: the shell paces moves by etcd's commit times (move-pacer.ts). */
  backlog?: number;
}

/** revisionOf gives a touched name's commit revision, once committed. */
export type RevisionOf = (name: string) => number | undefined;

export type WireReply = { ok: true; [k: string]: unknown } | { ok: false; error: { code: string; message: string } };

/** PlannedReply is how a request is answered once the batch is written. */
export interface PlannedReply {
  req: ClientRequest;
  build: (revisionOf: RevisionOf) => WireReply;
  /**
   * The answer may go out without proof that we still lead: it changes
   * nothing a deposed leader could get wrong. Only accepted start and
   * progress reports, which live in the leader's memory alone: an ack from a
   * deposed leader leaves the task running, which the real leader governs
   * through assignments anyway. A refusal stops a task, so it waits for
   * proof like everything else.
   */
  unfenced?: boolean;
}

export type PlannedEvent = { [K in EventKind]: { kind: K; payload: EventPayloads[K] } }[EventKind];

/** Writes is what etcd must be made to hold after a batch (the shell's encode.ts turns it into operations). */
export type Writes = Pick<Changes, 'resources' | 'cordons' | 'orphans'>;

export interface Plan {
  writes: Writes;
  /**
   * Write outcomes to record for re-sent requests, by the name whose writes
   * they describe: each commits with those writes, or, if they wrote nothing,
   * with the batch's last transaction.
   */
  outcomes: Map<string, Array<[string, Outcome]>>;
  replies: PlannedReply[];
  events: PlannedEvent[];
  /** Handoffs started (arm a deadline) or ended (disarm it). */
  handoffs: HandoffChange[];
  /** The batch's budget left work for the next batch: plan another soon. */
  backlog: boolean;
  /** How many resources the batch's work that can wait touched (what the shell's pacing counts). */
  backlogTouched: number;
  /** Sharded resources whose queues the shell must count (shards.ts), answered with a 'shard-queues' input. */
  shardProbes: ShardProbe[];
  /** Ids of sharded resources removed: the shell drops their queues. */
  shardDrops: Array<{ id: string; count: number }>;
  /** The next schedule fire is due at this wall time (epoch ms): plan a batch then. */
  wakeAt?: number;
}
