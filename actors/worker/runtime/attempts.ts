// Attempts is the worker's set of task attempts, by resource name: each one
// waiting out its start delay, running in its host, or ended on its own and
// reported. It carries out what assignments.ts decides, wires each attempt's
// effects to the outside (reports to the leader, results to JetStream,
// checkpoints read from etcd at start), and logs the lines the chaos checker
// reads: a task counts as running from its "task started" line to its
// "task stopped" line, and the latter is written only once it has certainly
// stopped (a thread is gone, or was never started).

import { keys } from '#protocol/keys.js';
import { decodeCheckpoint } from '#protocol/stored.js';
import { taskKindOf } from '#protocol/validate.js';
import { NotOwnerError } from '#protocol/errors.js';
import type { AssignedTask, Json } from '#protocol/messages.js';
import { publishEvent } from '#platform/nats/events.js';
import type { Bus, Store } from '#platform/ports.js';
import type { Clock, Timer } from '#platform/clock.js';
import { WorkerLog, type Logger } from '#platform/log.js';
import type { Known, KnownLookup } from '../assignments.js';
import type { RunningTask, TaskCallbacks, TaskEnd, TaskHost } from './host.js';
import type { Reporter } from './reporter.js';
import { parseShard, shardCount, shardId } from '#protocol/shards.js';
import { ShardIo, type ShardQueuesPort } from './shard-io.js';

/** Progress is sent to the leader, and announced, at most this often per task. */
export const PROGRESS_EVERY_MS = 1000;

export interface ResultsSink {
  emit(name: string, resourceId: string, itemId: string, item: unknown, run?: number): Promise<unknown>;
}

/** Where ctx.store's keys live (JetStream KV), by resource id. */
export interface TaskStateSink {
  get(resourceId: string, key: string): Promise<Json | undefined>;
  put(resourceId: string, key: string, value: Json): Promise<void>;
  delete(resourceId: string, key: string): Promise<void>;
}

export interface AttemptsDeps {
  worker: string;
  hostFor(kind: string): TaskHost | undefined;
  reporter: Reporter;
  results: ResultsSink;
  /** Shard-to-shard queues, for sharded resources (none: their shards fail to start). */
  queues?: ShardQueuesPort;
  /** ctx.store's backing; without it, ctx.store rejects. */
  taskState?: TaskStateSink;
  store: Store;
  bus: Bus;
  clock: Clock;
  log: Logger;
  /** The incarnation we run as now; undefined while not registered. */
  epoch(): string | undefined;
  /** Whether this worker may start anything now (lease alive, not fenced, not stopping). */
  mayStart(): boolean;
  /** Whether its tasks may still act (lease alive, not fenced); a stopping worker's tasks may, to save a last checkpoint. */
  leaseHeld(): boolean;
  onCountChange(running: number): void;
}

interface Attempt {
  task: AssignedTask;
  epoch: string;
  phase: 'waiting' | 'running' | 'ended';
  timer?: Timer;
  run?: RunningTask;
  since: number;
  /** This worker ran this attempt before, until a fence stopped it: its checkpoint is read even if the assignment predates it. */
  rerun: boolean;
  progress?: Json;
  progressDirty: boolean;
  stopped: boolean;
  /** A shard's queues, while it runs. */
  io?: ShardIo;
}

export class Attempts {
  private readonly attempts = new Map<string, Attempt>();
  private runningCount = 0;
  /**
   * Checkpoint and activity seqs, one counter for every attempt here: a fence
   * stops an attempt that the same lease, once restored, starts again, and
   * the leader takes a report of an attempt only above the last seq it took.
   */
  private seq = 0;
  /** Attempts a fence stopped under the lease `fencedEpoch` (name → id and attempt): a restored lease may start them again. */
  private readonly fenced = new Map<string, string>();
  private fencedEpoch: string | undefined;
  private readonly ticker: Timer;

  constructor(private readonly d: AttemptsDeps) {
    this.ticker = d.clock.every(PROGRESS_EVERY_MS, () => this.sendProgress());
  }

  /**
   * known is every attempt this worker has, for assignments.ts: a live view,
   * not a copy, since it is asked on every assign event (a copy made filling
   * a thousand slots quadratic).
   */
  known(): KnownLookup {
    const attempts = this.attempts;
    return {
      get: (name) => attempts.get(name)?.task,
      *[Symbol.iterator](): IterableIterator<[string, Known]> {
        for (const [name, a] of attempts) yield [name, a.task];
      },
    };
  }

  /** How many attempts run now: counted as they start and end, not by a scan (a fence stops a thousand). */
  get running(): number {
    return this.runningCount;
  }

  status(): Array<{ name: string; id: string; since: string; attempt: number }> {
    return [...this.attempts.values()]
      .filter((a) => a.phase === 'running')
      .map((a) => ({ name: a.task.name, id: a.task.id, since: new Date(a.since).toISOString(), attempt: a.task.attempt }))
      .sort((x, y) => (x.name < y.name ? -1 : 1));
  }

  /** start takes on an attempt; it runs once its start delay has passed. */
  start(task: AssignedTask): void {
    const epoch = this.d.epoch();
    if (!epoch || this.attempts.has(task.name)) return;
    if (this.fencedEpoch !== epoch) this.fenced.clear();
    const rerun = this.fenced.get(task.name) === runKey(task);
    this.fenced.delete(task.name);
    const a: Attempt = { task, epoch, phase: 'waiting', since: this.d.clock.wall(), rerun, progressDirty: false, stopped: false };
    this.attempts.set(task.name, a);
    if (task.delayMs && task.delayMs > 0) a.timer = this.d.clock.after(task.delayMs, () => void this.launch(a));
    else void this.launch(a);
  }

  private async launch(a: Attempt): Promise<void> {
    const { task } = a;
    if (a.stopped || !this.d.mayStart()) return;
    const host = this.d.hostFor(taskKindOf(task.spec));
    if (!host) return this.ended(a, { kind: 'failed', error: `worker ${this.d.worker} does not run kind ${taskKindOf(task.spec)}` });
    let checkpointed: Json | undefined;
    // The assignment says whether a checkpoint existed when it was made; one
    // run here before may have written one since.
    if (task.checkpoint || a.rerun) {
      try {
        checkpointed = await this.readCheckpoint(task);
      } catch (err) {
        // Without its checkpoint the task would start over: better to try again shortly.
        this.d.log.warn({ name: task.name, err: (err as Error).message }, 'could not read checkpoint; retrying');
        a.timer = this.d.clock.after(500, () => void this.launch(a));
        return;
      }
    }
    // The lease may have lapsed while we read: check again right before anything runs.
    if (a.stopped || !this.d.mayStart()) return;
    const shard = parseShard(task.name, task.id);
    if (shard && !this.d.queues) return this.ended(a, { kind: 'failed', error: `worker ${this.d.worker} has no shard queues (JetStream)` });
    a.phase = 'running';
    this.runningCount++;
    a.since = this.d.clock.wall();
    const count = shard ? (shardCount(task.spec) ?? 1) : 1;
    if (shard) a.io = this.shardIo(a, shard.id!, shard.index, count);
    const io = a.io;
    a.run = host.start(
      {
        // A shard's kind sees its resource (results go there) and which shard it is.
        resource: shard ? { name: shard.name, id: shard.id! } : { name: task.name, id: task.id },
        spec: task.spec,
        attempt: task.attempt,
        ...(a.rerun ? { rerun: true } : {}),
        checkpointed,
        ...(shard ? { shard: { index: shard.index, count } } : {}),
      },
      // Everything a task sends passes here; the lease is checked on each (a fence
      // timer can run late after a pause, but a message from the task is handled
      // first), so a task that outlived its lease is stopped at once and its
      // last words are dropped.
      {
        checkpoint: (state) => (this.d.leaseHeld() ? this.checkpoint(a, state) : Promise.reject(new NotOwnerError('the worker lost its lease'))),
        progress: (value) => {
          if (!this.d.leaseHeld()) return;
          a.progress = value;
          a.progressDirty = true;
        },
        emit: (item, id) => this.emit(a, item, id),
        ...(this.d.taskState ? { store: this.storeOf(a, this.d.taskState) } : {}),
        log: (level, obj, msg) => {
          if (this.d.leaseHeld()) this.d.log[level]({ ...obj, name: task.name, attempt: task.attempt, task: true }, msg);
        },
        ...(io ? { send: (i: number, item: Json, id: string) => io.send(i, item, id), next: () => io.next(), ack: (ref: number) => io.ack(ref), busy: (d: 1 | -1) => io.busy(d) } : {}),
      },
    );
    this.d.onCountChange(this.running);
    this.d.log.info({ name: task.name, resourceId: task.id, attempt: task.attempt, at: a.since }, WorkerLog.taskStarted);
    publishEvent(this.d.bus, this.d.worker, 'task.started', {
      name: task.name, id: task.id, worker: this.d.worker, taskKind: taskKindOf(task.spec), attempt: task.attempt,
    });
    this.report(a, { type: 'started', name: task.name, id: task.id, attempt: task.attempt });
    const run = a.run;
    void run.done.then((end) => {
      // A stop in progress owns the end of this attempt.
      if (!a.stopped) this.ended(a, end);
    });
  }

  private async readCheckpoint(task: AssignedTask): Promise<Json | undefined> {
    const key = keys.checkpoint(task.name);
    const snap = await this.d.store.range(key);
    const kv = snap.kvs.find((k) => k.key === key);
    if (!kv) return undefined;
    const cp = decodeCheckpoint(kv.value);
    return cp.id === task.id ? cp.state : undefined;
  }

  private checkpoint(a: Attempt, state: Json): Promise<void> {
    if (a.stopped && a.phase !== 'running') return Promise.reject(new NotOwnerError(`${a.task.name} is stopped`));
    const { task } = a;
    return this.d.reporter.send({ type: 'checkpoint', name: task.name, id: task.id, attempt: task.attempt, seq: ++this.seq, state }, a.epoch);
  }

  private async emit(a: Attempt, item: Json, id: string): Promise<void> {
    if (a.phase !== 'running' || !this.d.leaseHeld()) throw new NotOwnerError(`${a.task.name} attempt ${a.task.attempt} no longer runs here`);
    // A shard's results are its resource's.
    const shard = parseShard(a.task.name, a.task.id);
    await this.d.results.emit(shard?.name ?? a.task.name, shard?.id ?? a.task.id, id, item, a.task.run);
  }

  /** shardIo gives a shard attempt its queues, fenced like its emits, its activity reported to the leader. */
  private shardIo(a: Attempt, resourceId: string, index: number, count: number): ShardIo {
    const { task } = a;
    return new ShardIo({
      queues: this.d.queues!,
      resourceId,
      index,
      count,
      clock: this.d.clock,
      nextSeq: () => ++this.seq,
      // As for emits: while its stop's grace lasts a shard may finish what it holds (a move's new owner waits for it).
      owns: () => a.phase === 'running' && this.d.leaseHeld(),
      // Progress first: the whole may complete on this idle report, and a
      // shard stopped so keeps its last progress as its result (core/shards.ts).
      report: (idle, seq) => {
        if (idle) this.progressOf(a);
        this.report(a, { type: 'activity', name: task.name, id: task.id, attempt: task.attempt, seq, idle });
      },
      warn: (fields, msg) => this.d.log.warn({ ...fields, name: task.name, attempt: task.attempt }, msg),
    });
  }

  /** storeOf is an attempt's ctx.store: fenced as emit is, so an attempt that no longer runs here reads and writes nothing. */
  private storeOf(a: Attempt, sink: TaskStateSink): NonNullable<TaskCallbacks['store']> {
    const owned = (): void => {
      if (a.phase !== 'running' || !this.d.leaseHeld()) throw new NotOwnerError(`${a.task.name} attempt ${a.task.attempt} no longer runs here`);
    };
    const shard = parseShard(a.task.name, a.task.id);
    const count = shard ? (shardCount(a.task.spec) ?? 1) : 1;
    return {
      get: async (key) => (owned(), sink.get(a.task.id, key)),
      put: async (key, value) => (owned(), sink.put(a.task.id, key, value)),
      delete: async (key) => (owned(), sink.delete(a.task.id, key)),
      // A shard reads its siblings' keys (never writes them): each shard's are under its own id.
      ...(shard
        ? {
            getShard: async (index: number, key: string) => {
              owned();
              if (!Number.isInteger(index) || index < 0 || index >= count) throw new Error(`store.getShard: shard index must be 0 to ${count - 1}, got ${String(index)}`);
              return sink.get(shardId(shard.id!, index), key);
            },
          }
        : {}),
    };
  }

  /** ended records an attempt that ended on its own and reports how. */
  private ended(a: Attempt, end: TaskEnd): void {
    if (a.phase === 'ended') return;
    const { task } = a;
    const wasRunning = a.phase === 'running';
    a.phase = 'ended';
    if (wasRunning) this.runningCount--;
    this.d.onCountChange(this.running);
    const reason = end.kind === 'completed' ? 'completed' : end.kind === 'failed' ? `failed: ${end.error}` : 'stopped';
    if (wasRunning) this.logStopped(a, reason, this.d.clock.wall());
    const io = a.io;
    if (end.kind === 'completed') {
      const done = () => {
        io?.close(this.d.leaseHeld());
        this.report(a, { type: 'completed', name: task.name, id: task.id, attempt: task.attempt, ...(end.result !== undefined ? { result: end.result } : {}) });
      };
      // A shard that returned reports it only once its sends are stored: the leader counts on it.
      if (io) void io.settled().then(done);
      else done();
    } else if (end.kind === 'failed') {
      io?.close(this.d.leaseHeld());
      this.report(a, { type: 'failed', name: task.name, id: task.id, attempt: task.attempt, error: end.error });
    }
  }

  private report(a: Attempt, r: Parameters<Reporter['send']>[0]): void {
    this.d.reporter.send(r, a.epoch).catch((err: Error) => {
      if (!(err instanceof NotOwnerError)) this.d.log.warn({ name: r.name, type: r.type, err: err.message }, 'task report failed');
    });
  }

  private sendProgress(): void {
    for (const a of this.attempts.values()) this.progressOf(a);
  }

  private progressOf(a: Attempt): void {
    if (!a.progressDirty || a.phase !== 'running') return;
    a.progressDirty = false;
    const { task } = a;
    const progress = a.progress ?? null;
    this.report(a, { type: 'progress', name: task.name, id: task.id, attempt: task.attempt, progress });
    publishEvent(this.d.bus, this.d.worker, 'task.progress', { name: task.name, id: task.id, worker: this.d.worker, progress });
  }

  /**
   * stop ends an attempt and forgets it, resolving once it has certainly
   * stopped. graceMs 0 (a fence) terminates at once: the lease is about to
   * lapse and nothing may outlive it.
   */
  async stop(name: string, reason: string, graceMs: number, endedAt?: number): Promise<void> {
    const a = this.attempts.get(name);
    if (!a) return;
    this.attempts.delete(name);
    a.stopped = true;
    if (graceMs === 0) {
      if (this.fencedEpoch !== a.epoch) this.fenced.clear();
      this.fencedEpoch = a.epoch;
      this.fenced.set(name, runKey(a.task));
    }
    a.timer?.cancel();
    if (a.phase !== 'running' || !a.run) {
      this.d.reporter.drop(name);
      // Never started (waiting out a delay) and now never will: a move may go
      // on at once. Without this report a handoff of an attempt waiting out
      // its fence wait or backoff waited for its 30 s deadline.
      if (graceMs > 0 && a.phase === 'waiting') this.report(a, { type: 'stopped', name: a.task.name, id: a.task.id, attempt: a.task.attempt });
      return;
    }
    a.io?.drain();
    const end = await a.run.stop(graceMs);
    // Items it still holds go to the next owner at once on a clean stop; after a fence, after ack_wait.
    a.io?.close(graceMs > 0 && this.d.leaseHeld());
    // Still 'running': the run's own end is ignored once stopped (launch), so only this ends it.
    if (a.phase === 'running') this.runningCount--;
    a.phase = 'ended';
    this.d.onCountChange(this.running);
    const forced = end.kind === 'stopped' && end.forced;
    // With no grace (a fence) every stop is by force: nothing to warn of, and a
    // line between the fence and the stop would read as the task running on.
    if (forced && graceMs > 0) this.d.log.warn({ name, graceMs }, 'task did not stop within its grace; stopped by force');
    this.logStopped(a, forced ? `${reason} (forced)` : reason, endedAt ?? this.d.clock.wall());
    // A move waits for this before the next worker starts it (a stop-before-start handoff).
    const { task } = a;
    if (graceMs > 0) this.report(a, { type: 'stopped', name: task.name, id: task.id, attempt: task.attempt });
  }

  /** stopAll stops every attempt together. */
  async stopAll(reason: string, graceMs: number, endedAt?: number): Promise<void> {
    await Promise.all([...this.attempts.keys()].map((name) => this.stop(name, reason, graceMs, endedAt)));
  }

  private logStopped(a: Attempt, reason: string, at: number): void {
    const { task } = a;
    this.d.log.info({ name: task.name, resourceId: task.id, attempt: task.attempt, reason, at, loggedAt: this.d.clock.wall() }, WorkerLog.taskStopped);
    publishEvent(this.d.bus, this.d.worker, 'task.stopped', { name: task.name, id: task.id, worker: this.d.worker, reason, endedAt: new Date(at).toISOString() });
  }

  close(): void {
    this.ticker.cancel();
  }
}

const runKey = (t: Pick<AssignedTask, 'id' | 'attempt'>): string => `${t.id}#${t.attempt}`;
