// Wire types: what clients, masters and workers send each other, and the
// limits on them. Validation is in validate.ts, stored values in stored.ts.

import type { WireError } from './errors.js';
import type { RunView, ScheduleView } from './schedule-ops.js';
import type { ListFilter } from './list-query.js';

/** Resource names are subject-safe and key-safe: no spaces, slashes, wildcards or leading dots. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Process ids are single NATS subject tokens. */
export const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** Task kind names: single subject tokens, like ids. A spec without `kind` runs DEFAULT_KIND. */
export const KIND_RE = /^[A-Za-z0-9_-]{1,64}$/;
export const DEFAULT_KIND = 'noop';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Spec = { [k: string]: Json };

export const MAX_SPEC_BYTES = 64 * 1024;
/** The largest checkpoint, result, progress value or emitted item a task may send, as JSON bytes. */
export const MAX_STATE_BYTES = 64 * 1024;
/** Most reports in one ReportRequest. */
export const MAX_REPORTS = 1000;
export const MAX_SPEC_DEPTH = 16;

/** The lifecycle of a resource's task. */
export const ResourceState = {
  /** Waiting for a live worker that runs its kind and has room (see `reason`). */
  pending: 'pending',
  /** Assigned to a worker that has not reported the task running yet. */
  starting: 'starting',
  running: 'running',
  /** An attempt failed; the next starts after a backoff. */
  restarting: 'restarting',
  /** `run` resolved; the task does not run again (resource.restart runs it again). */
  completed: 'completed',
  /** Failed `attempts` times in a row. */
  failed: 'failed',
  /** Has a schedule and waits for its next fire (see `schedule.next`). */
  scheduled: 'scheduled',
} as const;
export type ResourceState = (typeof ResourceState)[keyof typeof ResourceState];

/** Resource is what clients see: `worker` is null while pending; `revision` is the etcd revision of its last change. */
export interface Resource {
  name: string;
  id: string;
  worker: string | null;
  spec: Spec;
  createdAt: string;
  revision: number;
  state: ResourceState;
  /** Starts so far: 1 on the first start, counting restarts and moves alike. */
  attempt: number;
  /** Failed attempts since the last success or resource.restart. */
  failures: number;
  /** The task's last reported progress (best effort). */
  progress?: Json;
  /** Why the last attempt failed. */
  error?: string;
  /** What `run` resolved with, once completed. */
  result?: Json;
  /** Why it is pending. */
  reason?: string;
  /** A sharded resource's shards (spec.shards), by index. */
  shards?: import('./shards.js').ShardView[];
  /** spec.schedule as it stands: next fires, the running run, pause. */
  schedule?: ScheduleView;
  /** The last ended runs of a scheduled resource, newest first. */
  runs?: RunView[];
}

/** spec.restart: how failed attempts are retried. */
export interface RestartPolicy {
  /** Failed attempts allowed before the resource is failed. */
  attempts: number;
  /** First backoff; it doubles per failure up to maxDelayMs, minus up to 25% jitter. */
  delayMs: number;
  maxDelayMs: number;
  /** From the second failure on, prefer a live worker that has not failed it. */
  reschedule: boolean;
}
export const DEFAULT_RESTART: RestartPolicy = { attempts: 3, delayMs: 1000, maxDelayMs: 30000, reschedule: true };


export interface AddRequest {
  name: string;
  spec: Spec;
  /** Answer where it would go, and why, and write nothing. */
  dryRun?: boolean;
}
export interface NameRequest {
  name: string;
}

export type OkReply<T> = { ok: true } & T;
export interface ErrorReply {
  ok: false;
  error: WireError;
}
export type Reply<T> = OkReply<T> | ErrorReply;

export interface AddResult {
  created: boolean;
  resource: Resource;
}
export interface ResourceResult {
  resource: Resource;
}
export interface ListResult {
  resources: Resource[];
  /** Present when more remain: pass it as `after` to get the next page. */
  next?: string;
}
export interface ListRequest extends ListFilter {
  /** Names after this one (exclusive), in name order. */
  after?: string;
  /** At most this many (default and most: LIST_PAGE_MAX). A page also stops near LIST_PAGE_BYTES. */
  limit?: number;
}

export const LIST_PAGE_MAX = 5000;
/** Replies stay well under NATS's default max_payload (1 MiB). */
export const LIST_PAGE_BYTES = 512 * 1024;
export interface WorkerLoad {
  id: string;
  capacity: number;
  resources: number;
  /** The task kinds it runs. */
  kinds: string[];
  /** Its labels (gaffer worker --label k=v). */
  labels: Record<string, string>;
  /** Takes nothing new (worker.cordon, or draining). */
  cordoned: boolean;
  /** A drain is moving its resources away. */
  draining: boolean;
}

/** Label names and values: subject- and key-safe words. */
export const LABEL_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** A placement rule over worker labels: hard in spec.constraints, soft in spec.prefer. */
export interface Constraint {
  key: string;
  op: 'in' | 'notIn' | 'exists' | 'notExists';
  /** For in and notIn. */
  values?: string[];
}

/** A worker as placement sees it for one resource: eligible with a score (higher is better), or excluded by a rule. */
export type Candidate = { worker: string; score: number } | { worker: string; excluded: string };

export interface ExplainResult {
  name: string;
  /** Where it is (or would go); null when no worker fits. */
  worker: string | null;
  /** Why it is where it is, or why it is pending. */
  reason: string;
  /** Every live worker, ranked: eligible ones by score, then the excluded. */
  candidates: Candidate[];
}

export interface DryRunResult {
  dryRun: true;
  worker: string | null;
  reason?: string;
  candidates: Candidate[];
}

export interface WorkerRequest {
  worker: string;
}
export interface DrainRequest {
  worker: string;
  /** How long a move may wait for the old worker to confirm it stopped before the leader fences it. */
  deadlineMs?: number;
}
export interface DrainResult {
  /** Resources whose moves are committed. */
  moved: number;
  /** Resources that could not move (no other worker fits them): they stay. */
  remaining: number;
}

/** Why a resource moved. */
export type MoveReason = 'lost' | 'drain' | 'rebalance' | 'reschedule' | 'replace' | 'update';
export interface StatusResult {
  leader: string;
  /** The leader's term (its fencing token): higher is newer. */
  term: number;
  masters: string[];
  workers: WorkerLoad[];
  /** Resources waiting for a worker with room. */
  pending: number;
  /** How many resources there are, and in each state (resource.list pages through them). */
  resources?: ResourceSummary;
}

export interface ResourceSummary {
  total: number;
  byState: Partial<Record<ResourceState, number>>;
}

/** AssignedTask is what a worker is told to run: one attempt of one resource. */
export interface AssignedTask {
  name: string;
  id: string;
  worker: string | null;
  spec: Spec;
  createdAt: string;
  revision: number;
  /** This attempt's number (ctx.attempt). */
  attempt: number;
  /** Start only this long after hearing of it (a restart's backoff). */
  delayMs?: number;
  /** A checkpoint exists: read it before starting. */
  checkpoint?: boolean;
  /** Handed off from another worker that has not stopped yet: do not start until released. */
  hold?: boolean;
  /** A scheduled resource's run this attempt belongs to (its results carry it). */
  run?: number;
}

/** AssignEvent is published on worker.<id>.assign for each committed change to that worker's assignment keys. */
export interface AssignEvent {
  type: 'put' | 'delete';
  resource: AssignedTask;
  revision: number;
  /** The worker incarnation (its lease id) the assignment was written for; only that incarnation runs it. */
  epoch: string;
}
export interface WorkerStatusResult {
  id: string;
  running: string[];
  /** The same tasks with the resource id each runs, so a caller can tell a re-created resource apart. */
  tasks: Array<{ name: string; id: string; since: string; attempt: number }>;
}

/**
 * TaskReport is what a worker tells the leader about one attempt. Each names
 * the attempt it is about; the leader refuses (NOT_OWNER) a report from
 * anyone but the worker incarnation that currently runs that attempt.
 */
export type TaskReport =
  | { type: 'started'; name: string; id: string; attempt: number }
  | { type: 'progress'; name: string; id: string; attempt: number; progress: Json }
  /** seq orders an attempt's checkpoints: a late duplicate never overwrites a newer one. */
  | { type: 'checkpoint'; name: string; id: string; attempt: number; seq: number; state: Json }
  | { type: 'completed'; name: string; id: string; attempt: number; result?: Json }
  | { type: 'failed'; name: string; id: string; attempt: number; error: string }
  /** The attempt was stopped (unassigned or moved) and has certainly ended: a handoff may go on. */
  | { type: 'stopped'; name: string; id: string; attempt: number }
  /** A shard's activity: idle (it awaits its inbox holding nothing) or busy; seq orders an attempt's reports. */
  | { type: 'activity'; name: string; id: string; attempt: number; seq: number; idle: boolean };
export type TaskReportType = TaskReport['type'];

/** ReportRequest is one worker's batch of reports, on task.report. */
export interface ReportRequest {
  worker: string;
  /** The reporting incarnation (its lease id). */
  epoch: string;
  reports: TaskReport[];
}
export interface ReportResult {
  /** One per report, in order. */
  results: Array<{ ok: true } | { ok: false; error: WireError }>;
}

/** AckMessage goes from the leader to a forwarding master once per batch: these requests were answered. */
export interface AckMessage {
  ids: string[];
  /** The subset answered with an error, for the forwarding master's endpoint stats. */
  errors: string[];
}
