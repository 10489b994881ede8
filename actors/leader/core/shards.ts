// Sharded resources: a resource with `spec.shards: N` is N entries named
// `<name>/<index>` (src/protocol/shards.ts), each placed, moved, drained,
// fenced and restarted by the same rules as any resource, plus the
// resource's own record, which runs nowhere and holds the state of the whole.
// This file adds and removes the N together, folds the shards' states into
// the resource's, fails the whole when one shard fails for good (stopping
// the others), and decides when the whole is complete.
//
// Completion (termination detection). Shards pass items to each other
// through durable JetStream queues, one work-queue subject per shard: an
// item stays stored until its receiver acknowledges it. A shard's runtime
// (actors/worker/runtime/shard-io.ts) reports `idle` when its kind awaits
// the inbox holding no unacknowledged item and no send of it is unsettled,
// and it enforces two rules: an ack waits until every send made before it is
// stored, and once the attempt has been idle it may send only while it holds
// an item (work after the first idle is caused by items). The resource is
// complete when, for a token naming every shard's attempt and its last
// activity report:
//   1. every shard has completed, or its current attempt's last report is
//      idle (so that attempt has been idle at least once), and then
//   2. the shell, asked after (1) held, found every queue of the resource
//      empty (`queued` all 0) at some instant T, and
//   3. the token is unchanged when the answer is planned.
// Why that is safe: at T no item is stored, so none is held by any shard
// (held items are stored until acknowledged) and none is on its way (a send
// is either stored, or unsettled, and then its sender holds an unacknowledged
// item, which is stored, or is before its first idle, which (1) rules out
// for the current attempts; an older attempt is stopped or fenced before a
// newer one starts, and a shard that returned settled its sends before it
// said so). With no item anywhere and every shard past its first idle, no
// shard can send again: every send needs an item held. So nothing can happen after T but
// shards waiting, and completing is right. The last item in flight between
// shards while all report idle is the case (2) catches: it is stored. A
// plain "all idle" check would complete there (GUIDE: Mattern, Safra).
// The decision is taken here from plain values; the shell only counts.

import { ResourceState, type Json, type Spec } from '#protocol/messages.js';
import { combineProgress, isShardedRecord, parseShard, shardCount, shardId, shardName, type ShardView } from '#protocol/shards.js';
import { toResource } from '#protocol/stored.js';
import type { Resource } from '#protocol/messages.js';
import type { ClusterState } from './state.js';
import { TERMINAL, type Entry } from './records.js';
import type { Tick } from './batch.js';
import { endHandoff } from './handoffs.js';
import { place } from './placement.js';
import { remove } from './resources.js';

/** ShardProbe asks the shell how many items wait in each queue of a resource (an Input 'shard-queues' answers). */
export interface ShardProbe {
  name: string;
  id: string;
  count: number;
  token: string;
}

/** isSharded: the entry is a sharded resource's own record. */
export const isSharded = (e: Pick<Entry, 'rec'>): boolean => isShardedRecord(e.rec.name, e.rec.spec);

/** shardsOf lists a sharded resource's shard entries, by index (missing ones left out). */
export function shardsOf(s: ClusterState, e: Pick<Entry, 'rec'>): Entry[] {
  const n = shardCount(e.rec.spec) ?? 0;
  const out: Entry[] = [];
  for (let i = 0; i < n; i++) {
    const x = s.resources.get(shardName(e.rec.name, i));
    if (x) out.push(x);
  }
  return out;
}

/** parentOf is the sharded resource a shard entry belongs to. */
export function parentOf(s: ClusterState, name: string): Entry | undefined {
  const p = parseShard(name);
  const e = p && s.resources.get(p.name);
  return e && isSharded(e) ? e : undefined;
}

/** addSharded creates the resource and its shards, each placed like a resource; false if the name exists. */
export function addSharded(s: ClusterState, name: string, spec: Spec, tick: Pick<Tick, 'newId' | 'wall'>): boolean {
  if (s.resources.has(name)) return false;
  const id = tick.newId();
  const base = { spec, createdAt: tick.wall, worker: null, state: ResourceState.pending, attempt: 0, failures: 0 };
  s.touch(name);
  const parent: Entry = { rec: { name, id, ...base }, revision: 0, assign: undefined };
  s.resources.set(name, parent);
  for (let i = 0; i < shardCount(spec)!; i++) {
    const n = shardName(name, i);
    s.touch(n);
    const e: Entry = { rec: { name: n, id: shardId(id, i), ...base }, revision: 0, assign: undefined };
    s.resources.set(n, e);
    place(s, e);
  }
  s.renamed();
  fold(s, parent);
  return true;
}

/**
 * restoreShards, after a load, gives a sharded resource the shard entries it
 * lacks: its add can span several transactions (etcd takes 128 operations
 * in one), and a leader that failed between them left the rest unwritten.
 * They are written pending and placed by the next batches.
 */
export function restoreShards(s: ClusterState): void {
  for (const e of [...s.resources.values()]) {
    if (!isSharded(e) || TERMINAL.has(e.rec.state)) continue;
    for (let i = 0; i < shardCount(e.rec.spec)!; i++) {
      const n = shardName(e.rec.name, i);
      if (s.resources.has(n)) continue;
      s.touch(n);
      const { name: _n, id: _i, result: _r, error: _e, reason: _re, progress: _p, ...rest } = e.rec;
      s.resources.set(n, { rec: { ...rest, name: n, id: shardId(e.rec.id, i), worker: null, state: ResourceState.pending, attempt: 0, failures: 0 }, revision: 0, assign: undefined });
      s.pending.add(n);
      s.toTry = Infinity;
      s.renamed();
    }
  }
}

/** removeSharded deletes the resource and its shards (their checkpoints too); the shell drops their queues. */
export function removeSharded(s: ClusterState, name: string): Resource | undefined {
  const e = s.resources.get(name);
  if (!e) return undefined;
  const view = shardedView(s, e);
  for (const x of shardsOf(s, e)) remove(s, x.rec.name);
  remove(s, name);
  s.shardDrops.push({ id: e.rec.id, count: shardCount(e.rec.spec) ?? 0 });
  return view;
}

/** restartSharded runs a completed or failed sharded resource again: every shard, from its checkpoint. */
export function restartSharded(s: ClusterState, name: string): Resource | ResourceState | undefined {
  const e = s.resources.get(name);
  if (!e) return undefined;
  if (!TERMINAL.has(e.rec.state)) return e.rec.state;
  s.touch(name);
  const { result: _r, error: _e, ...rest } = e.rec;
  e.rec = { ...rest, failures: 0, state: ResourceState.starting };
  e.probe = undefined;
  for (const x of shardsOf(s, e)) {
    const { result: _xr, error: _xe, failedOn: _f, ...r } = x.rec;
    x.rec = { ...r, failures: 0 };
    x.activity = undefined;
    place(s, x);
  }
  fold(s, e);
  return shardedView(s, e);
}

/** noteActivity keeps a shard's newest activity report of its current attempt, and asks for a completion check. */
export function noteActivity(s: ClusterState, e: Entry, r: { attempt: number; seq: number; idle: boolean }): void {
  const parent = parentOf(s, e.rec.name);
  if (!parent || r.attempt !== e.rec.attempt) return;
  const a = e.activity;
  if (a && a.attempt === r.attempt && a.seq > r.seq) return; // a late copy of an older report
  e.activity = { attempt: r.attempt, seq: r.seq, idle: r.idle };
  s.shardChecks.add(parent.rec.name);
}

/**
 * noteStarted takes a shard attempt's start: busy until it says idle again.
 * A worker whose lease lapsed and came back starts the same attempt again,
 * and the run before it may have said idle last; the new run has not been
 * idle yet, so it may still send without holding an item (condition 1).
 */
export function noteStarted(e: Entry, attempt: number): void {
  const a = e.activity;
  if (a && a.attempt === attempt && a.idle) e.activity = { ...a, idle: false };
}

/**
 * shardReported follows a report that changed a shard's record: its
 * resource's state is folded again, and a shard failed for good fails the
 * whole and stops the others.
 */
export function shardReported(s: ClusterState, name: string): void {
  const e = s.resources.get(name);
  const parent = parentOf(s, name);
  if (!e || !parent || TERMINAL.has(parent.rec.state)) return;
  if (e.rec.state === ResourceState.failed) {
    const index = parseShard(name)!.index;
    const error = `shard ${index} failed: ${e.rec.error ?? 'unknown error'}`;
    for (const x of shardsOf(s, parent)) if (x !== e && !TERMINAL.has(x.rec.state)) stop(s, x, ResourceState.failed, `stopped: ${error}`);
    s.touch(parent.rec.name);
    parent.rec = { ...parent.rec, state: ResourceState.failed, error };
    parent.probe = undefined;
    s.log.tasks.push({ kind: 'failed', name: parent.rec.name, id: parent.rec.id, worker: e.rec.failedOn?.at(-1) ?? '', error, failures: e.rec.failures });
    return;
  }
  if (e.rec.state === ResourceState.completed) s.shardChecks.add(parent.rec.name);
  fold(s, parent);
}

/** stop ends a shard without a report of its own: it runs nowhere, in `state`. */
function stop(s: ClusterState, e: Entry, state: ResourceState, error?: string): void {
  s.touch(e.rec.name);
  s.pending.delete(e.rec.name);
  if (e.rec.worker) s.free(e.rec.worker, e.rec.name);
  endHandoff(s, e);
  s.fenceWaits.drop(e.rec.name);
  const { delayMs: _d, reason: _r, ...rest } = e.rec;
  e.rec = { ...rest, worker: null, state, ...(error ? { error } : {}) };
  e.assign = undefined;
  e.activity = undefined;
}

/** tokenOf names every shard's attempt and last activity: a probe's answer counts only if it is unchanged. */
function tokenOf(shards: readonly Entry[]): string {
  return shards.map((x) => (x.rec.state === ResourceState.completed ? 'done' : `${x.rec.attempt}:${x.activity?.seq ?? 0}`)).join(',');
}

/** quiet: every shard has completed, or its current attempt's last report says idle (condition 1 above). */
function quiet(count: number, shards: readonly Entry[]): boolean {
  if (shards.length !== count) return false;
  return shards.every((x) => {
    if (x.rec.state === ResourceState.completed) return true;
    const a = x.activity;
    return x.rec.state === ResourceState.running && !x.assign?.hold && !!a && a.attempt === x.rec.attempt && a.idle;
  });
}

/** checkShards asks for a queue probe of every resource whose shards are all quiet and not yet probed as they are. */
export function checkShards(s: ClusterState): ShardProbe[] {
  const probes: ShardProbe[] = [];
  for (const name of s.shardChecks) {
    const e = s.resources.get(name);
    if (!e || !isSharded(e) || TERMINAL.has(e.rec.state)) continue;
    const count = shardCount(e.rec.spec)!;
    const shards = shardsOf(s, e);
    if (!quiet(count, shards)) continue;
    const token = tokenOf(shards);
    if (e.probe === token) continue;
    e.probe = token;
    probes.push({ name, id: e.rec.id, count, token });
  }
  s.shardChecks.clear();
  return probes;
}

/**
 * queuesAnswered takes the shell's count of the items waiting in each queue
 * (`queued`, undefined when it could not count): with every queue empty and
 * the token unchanged the resource is complete (conditions 2 and 3 above); a
 * shard that returned while items wait for it runs again to take them.
 */
export function queuesAnswered(s: ClusterState, name: string, id: string, token: string, queued: readonly number[] | undefined): void {
  const e = s.resources.get(name);
  if (!e || e.rec.id !== id || !isSharded(e) || TERMINAL.has(e.rec.state) || e.probe !== token) return;
  e.probe = undefined;
  const shards = shardsOf(s, e);
  const count = shardCount(e.rec.spec)!;
  if (!queued || !quiet(count, shards) || tokenOf(shards) !== token) return void s.shardChecks.add(name);
  if (queued.every((n) => n === 0)) return complete(s, e, shards);
  for (const x of shards) {
    if (x.rec.state === ResourceState.completed && (queued[parseShard(x.rec.name)!.index] ?? 0) > 0) place(s, x, { reason: 'lost' });
  }
  fold(s, e);
}

function complete(s: ClusterState, e: Entry, shards: readonly Entry[]): void {
  // A shard still running (idle) is stopped now: its last progress stands for its result
  // (its worker sends progress before the idle report this completion rests on).
  const results: Json[] = shards.map((x) => (x.rec.state === ResourceState.completed ? (x.rec.result ?? null) : (x.rec.progress ?? null)));
  for (const x of shards) if (x.rec.state !== ResourceState.completed) stop(s, x, ResourceState.completed);
  s.touch(e.rec.name);
  e.rec = { ...e.rec, state: ResourceState.completed, result: { shards: results } };
  s.log.tasks.push({ kind: 'completed', name: e.rec.name, id: e.rec.id, worker: '' });
}

/** fold sets a sharded resource's state, attempt and failures from its shards' (written only when they change). */
function fold(s: ClusterState, e: Entry): void {
  if (TERMINAL.has(e.rec.state)) return;
  const shards = shardsOf(s, e);
  const states = new Set(shards.map((x) => x.rec.state));
  const state =
    states.has(ResourceState.running) ? ResourceState.running
    : states.has(ResourceState.restarting) ? ResourceState.restarting
    : [...states].every((x) => x === ResourceState.pending) ? ResourceState.pending
    : ResourceState.starting;
  const attempt = Math.max(0, ...shards.map((x) => x.rec.attempt));
  const failures = shards.reduce((n, x) => n + x.rec.failures, 0);
  const reason = state === ResourceState.pending ? shards.find((x) => x.rec.reason)?.rec.reason : undefined;
  if (e.rec.state === state && e.rec.attempt === attempt && e.rec.failures === failures && e.rec.reason === reason) return;
  s.touch(e.rec.name);
  const { reason: _r, ...rest } = e.rec;
  e.rec = { ...rest, state, attempt, failures, ...(reason ? { reason } : {}) };
}

/** foldAll refolds every sharded resource a batch touched a shard of (a move, a new attempt, a failure). */
export function foldTouched(s: ClusterState): void {
  const parents = new Set<string>();
  for (const name of s.log.before.keys()) {
    const p = parseShard(name);
    if (p) parents.add(p.name);
  }
  for (const name of parents) {
    const e = s.resources.get(name);
    if (e && isSharded(e)) fold(s, e);
  }
}

/** whereShards says where each shard of a sharded resource is, for explain (each is placed like a resource). */
export function whereShards(s: ClusterState, e: Pick<Entry, 'rec'>): string {
  const where = shardsOf(s, e).map((x) => `${parseShard(x.rec.name)!.index} ${x.rec.worker ? `on ${x.rec.worker}` : `${x.rec.state}${x.rec.reason ? ` (${x.rec.reason})` : ''}`}`);
  return `sharded: it runs nowhere itself; each shard is placed like a resource (shard ${where.join(', shard ')})`;
}

/** shardedView is what clients see of a resource: its record, and for a sharded one each shard and their progress combined. */
export function shardedView(s: ClusterState, e: Pick<Entry, 'rec' | 'revision'>): Resource {
  return withShards(s, e, toResource(e.rec, e.revision));
}

/** withShards adds a sharded resource's shards, and their progress combined, to a view of it (unchanged for any other). */
export function withShards(s: ClusterState, e: Pick<Entry, 'rec'>, r: Resource): Resource {
  if (!isSharded(e)) return r;
  const shards: ShardView[] = shardsOf(s, e).map((x) => ({
    index: parseShard(x.rec.name)!.index,
    worker: x.rec.worker,
    state: x.rec.state,
    attempt: x.rec.attempt,
    ...(x.rec.progress !== undefined ? { progress: x.rec.progress } : {}),
    ...(x.activity && x.activity.attempt === x.rec.attempt ? { idle: x.activity.idle } : {}),
    ...(x.rec.error ? { error: x.rec.error } : {}),
  }));
  const progress = combineProgress(shards.map((x) => x.progress));
  return { ...r, ...(progress !== undefined ? { progress } : {}), shards };
}
