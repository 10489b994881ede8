// ThreadHost runs each attempt of a kind in its own worker thread
// (thread-main.js), under a V8 heap limit. The thread is the unit of
// isolation: a kind that spins, blocks, leaks or calls process.exit takes
// down only its thread, and worker.terminate() ends it whatever it is doing.
// It is not a security boundary (the kind shares the process's files, env
// and network), only a bound on what a faulty kind can do to the worker.
//
// Everything from the thread is untrusted (the kind can post on parentPort
// itself), so each message is checked here with the same rules as the
// context's: a checkpoint or item that is not plain JSON is nacked, a bad
// result fails the attempt. The thread's stdout and stderr are captured and
// forwarded line by line through cb.log (info and warn), so a chatty kind
// shows up in the worker's structured log, tagged with the task, instead of
// interleaving raw text with it; log lines are rate limited.

import { isAbsolute } from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Json } from '#kinds/api.js';
import { checkStoreKey } from '#protocol/task-state.js';
import { checkId, errorText, LOG_LEVELS, logArgs, MAX_TEXT, toJson, truncate, type LogLevel } from './context.js';
import type { RunningTask, TaskCallbacks, TaskEnd, TaskHost, TaskStart } from './host.js';
import type { FromThread, ThreadData, ToThread } from './thread-main.js';

export const THREAD_MAIN = new URL('./thread-main.js', import.meta.url);
export const DEFAULT_MEMORY_MB = 256;

/** resourceLimits for a task thread: a leak ends the thread (ERR_WORKER_OUT_OF_MEMORY), not the process. */
export const threadLimits = (memoryMb = DEFAULT_MEMORY_MB) => ({ maxOldGenerationSizeMb: memoryMb, maxYoungGenerationSizeMb: 32 });

/** The thread's calls that the host answers (ack, nack, or for 'next' an item or the end). */
const CALLS: ReadonlySet<string> = new Set(['checkpoint', 'emit', 'send', 'next', 'qack', 'store']);

/** Checkpoints and emits awaiting the worker; past this the thread is nacked, as backpressure. */
const MAX_IN_FLIGHT = 1024;
/** Log lines: a burst of LOG_BURST, then LOG_PER_SEC; the rest are counted and reported as dropped. */
const LOG_BURST = 500;
const LOG_PER_SEC = 100;
/** How long 'done' waits after the thread's exit for the rest of its console output. */
const OUTPUT_DRAIN_MS = 100;

export interface ThreadHostOptions {
  /** The kind's module: a file URL or an absolute path to an ES module. */
  module: string;
  kind: string;
  /** The thread's old-generation heap limit. Default 256. */
  memoryMb?: number;
}

/** moduleUrl normalizes a file URL or an absolute path to a file URL. */
export function moduleUrl(module: string): string {
  if (module.startsWith('file:')) return new URL(module).href;
  if (isAbsolute(module)) return pathToFileURL(module).href;
  throw new Error(`task module must be a file URL or an absolute path, got "${module}"`);
}

export class ThreadHost implements TaskHost {
  private readonly module: string;

  constructor(private readonly opts: ThreadHostOptions) {
    this.module = moduleUrl(opts.module);
  }

  start(start: TaskStart, cb: TaskCallbacks): RunningTask {
    return new ThreadTask({ module: this.module, kind: this.opts.kind, start }, this.opts.memoryMb ?? DEFAULT_MEMORY_MB, cb);
  }
}

const msgOf = (m: unknown): { t?: unknown; [k: string]: unknown } | undefined =>
  m !== null && typeof m === 'object' && !Array.isArray(m) ? (m as { t?: unknown }) : undefined;

class ThreadTask implements RunningTask {
  readonly done: Promise<TaskEnd>;
  private resolveDone!: (end: TaskEnd) => void;
  private worker: Worker | undefined;
  /** How the attempt ended, once known; the thread may still be running until 'exit'. */
  private outcome: TaskEnd | undefined;
  private stopping = false;
  private crash: string | undefined;
  private exited = false;
  /** done has settled: nothing more reaches the callbacks, not even console output still in the pipe. */
  private settled = false;
  private inFlight = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private tokens = LOG_BURST;
  private refilledAt = Date.now();
  private droppedLogs = 0;

  constructor(data: ThreadData & { discover?: false }, memoryMb: number, private readonly cb: TaskCallbacks) {
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    try {
      this.worker = new Worker(THREAD_MAIN, { workerData: data, resourceLimits: threadLimits(memoryMb), stdout: true, stderr: true });
    } catch (err) {
      this.exited = true;
      this.resolveDone({ kind: 'failed', error: `starting the task thread failed: ${errorText(err)}` });
      return;
    }
    const w = this.worker;
    w.on('message', (m: unknown) => this.onMessage(m));
    w.on('error', (err: unknown) => {
      const code = (err as { code?: unknown } | null)?.code;
      this.crash ??=
        code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? `the task ran out of memory (the thread's heap limit is ${memoryMb} MB)`
          : `the task thread crashed: ${errorText(err)}`;
    });
    const output = Promise.all([this.forward(w.stdout, 'info', 'stdout'), this.forward(w.stderr, 'warn', 'stderr')]);
    w.on('exit', (code: number) => this.onExit(code, output));
  }

  stop(graceMs: number): Promise<TaskEnd> {
    if (this.exited || this.outcome) return this.done;
    if (!this.stopping) {
      this.stopping = true;
      this.post({ t: 'stop' });
    }
    // No grace (a fence) ends it now, not a timer tick later: after a pause the
    // thread runs again as soon as the process does, and every turn of this
    // event loop before terminate() is time it runs unowned.
    if (graceMs <= 0) this.end({ kind: 'stopped', forced: true });
    // Each call may shorten the grace; forcing twice is harmless.
    else this.timers.push(setTimeout(() => this.end({ kind: 'stopped', forced: true }), graceMs));
    return this.done;
  }

  /** end records how the attempt ended and ends the thread; 'done' settles on its 'exit'. */
  private end(e: TaskEnd): void {
    if (this.outcome || this.exited) return;
    // Once stop was called, whatever run does is a stop (see RunningTask.stop).
    this.outcome = this.stopping && e.kind !== 'stopped' ? { kind: 'stopped', forced: false } : e;
    this.worker?.terminate().catch(() => {});
  }

  private onExit(code: number, output: Promise<unknown>): void {
    this.exited = true;
    for (const t of this.timers) clearTimeout(t);
    const lost = this.crash ?? `the task thread exited with code ${code} before run returned (process.exit in the kind?)`;
    const end: TaskEnd = this.outcome ?? (this.stopping ? { kind: 'stopped', forced: false } : { kind: 'failed', error: lost });
    // Stopped by force (a fence, or a kind that would not stop): say so at
    // once, since a fenced worker's next registration and a handoff wait for
    // it; console lines still in the pipe are dropped rather than waited for.
    if (end.kind === 'stopped' && end.forced) {
      this.settled = true;
      this.resolveDone(end);
      return;
    }
    // The thread is gone; wait (briefly) for its last console lines so they are logged before 'done'.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, OUTPUT_DRAIN_MS)));
    void Promise.race([output, late]).then(() => {
      clearTimeout(timer);
      this.settled = true;
      this.resolveDone(end);
    });
  }

  private post(m: ToThread): void {
    if (this.exited) return;
    try {
      this.worker?.postMessage(m);
    } catch {
      // The thread is going away; its 'exit' settles the attempt.
    }
  }

  private onMessage(raw: unknown): void {
    const m = msgOf(raw);
    if (!m || this.outcome || this.exited) {
      // After the end, calls are refused: the attempt no longer owns anything.
      if (m && typeof m.t === 'string' && CALLS.has(m.t) && Number.isSafeInteger(m.seq)) {
        this.post({ t: 'nack', seq: m.seq as number, error: `${m.t} refused: this task attempt has ended` });
      }
      return;
    }
    switch (m.t) {
      case 'checkpoint':
      case 'emit':
      case 'send':
      case 'next':
      case 'qack':
      case 'store':
        return this.call(m);
      case 'busy':
        if (this.cb.busy && (m.delta === 1 || m.delta === -1)) {
          try {
            this.cb.busy(m.delta);
          } catch {
            // A release with no mark held: the context gives each mark back once, so only a forged message gets here.
          }
        }
        return;
      case 'progress':
        try {
          this.cb.progress(toJson(m.value, 'progress'));
        } catch {
          // Best effort: a bad progress value is dropped (the context already refused it to the kind).
        }
        return;
      case 'log':
        if (this.allowLog()) {
          const [fields, text] = logArgs(m.obj, m.msg ?? '');
          this.cb.log(LOG_LEVELS.includes(m.level as string) ? (m.level as LogLevel) : 'info', fields, text);
        }
        return;
      case 'done': {
        let result: Json | undefined;
        try {
          result = m.result === undefined ? undefined : toJson(m.result, 'result');
        } catch (err) {
          return this.end({ kind: 'failed', error: errorText(err) });
        }
        return this.end({ kind: 'completed', result });
      }
      case 'failed':
        return this.end({ kind: 'failed', error: truncate(typeof m.error === 'string' ? m.error : 'the task failed with no message') });
    }
  }

  private call(m: { t?: unknown; [k: string]: unknown }): void {
    const seq = m.seq;
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq)) return;
    const nack = (err: unknown): void => this.post({ t: 'nack', seq, error: errorText(err) });
    if (this.inFlight >= MAX_IN_FLIGHT) return nack(`${String(m.t)} refused: ${MAX_IN_FLIGHT} calls are already waiting`);
    let p: Promise<ToThread>;
    try {
      p = this.invoke(m, seq);
    } catch (err) {
      return nack(err);
    }
    this.inFlight++;
    Promise.resolve(p).then(
      (answer) => this.post(answer),
      (err: unknown) => nack(err),
    ).finally(() => this.inFlight--);
  }

  /** invoke checks one call from the thread, hands it to the worker and says what to answer. */
  private invoke(m: { t?: unknown; [k: string]: unknown }, seq: number): Promise<ToThread> {
    const cb = this.cb;
    const acked = (p: Promise<unknown>): Promise<ToThread> => p.then(() => ({ t: 'ack', seq }));
    switch (m.t) {
      case 'checkpoint':
        return acked(cb.checkpoint(toJson(m.state, 'checkpoint')));
      case 'emit':
        return acked(cb.emit(toJson(m.item, 'emitted item'), checkId(m.id)));
      case 'store':
        return this.storeCall(m).then((value) => (value === undefined ? { t: 'ack', seq } : { t: 'ack', seq, value }));
      case 'send':
        if (!cb.send) throw new Error('send refused: this resource is not sharded (spec.shards)');
        if (typeof m.index !== 'number') throw new Error('send: the shard index must be a number');
        return acked(cb.send(m.index, toJson(m.item, 'sent item'), checkId(m.id)));
      case 'next':
        return (cb.next ? cb.next() : Promise.resolve(undefined)).then((v) => (v ? { t: 'item', seq, ref: v.ref, item: v.item, redelivered: v.redelivered } : { t: 'end', seq }));
      default:
        if (!cb.ack || typeof m.ref !== 'number') throw new Error('ack refused: no such item');
        return acked(cb.ack(m.ref));
    }
  }

  /** storeCall checks a ctx.store call from the thread as context.ts does, then makes it. */
  private storeCall(m: { [k: string]: unknown }): Promise<Json | undefined | void> {
    const store = this.cb.store;
    if (!store) throw new Error('store refused: this worker has no task store');
    const key = checkStoreKey(m.key);
    if (m.op === 'get' && m.shard !== undefined) {
      if (!store.getShard) throw new Error('store.getShard refused: this resource is not sharded (spec.shards)');
      if (typeof m.shard !== 'number') throw new Error('store.getShard: the shard index must be a number');
      return store.getShard(m.shard, key);
    }
    if (m.op === 'get') return store.get(key);
    if (m.op === 'put') return store.put(key, toJson(m.value, 'stored value'));
    if (m.op === 'delete') return store.delete(key);
    throw new Error(`store refused: unknown operation ${JSON.stringify(String(m.op))}`);
  }

  private allowLog(): boolean {
    const now = Date.now();
    this.tokens = Math.min(LOG_BURST, this.tokens + ((now - this.refilledAt) / 1000) * LOG_PER_SEC);
    this.refilledAt = now;
    if (this.tokens < 1) {
      this.droppedLogs++;
      return false;
    }
    this.tokens--;
    if (this.droppedLogs > 0) {
      this.cb.log('warn', { dropped: this.droppedLogs }, 'task log lines dropped (rate limit)');
      this.droppedLogs = 0;
    }
    return true;
  }

  /**
   * forward sends the thread's console output to cb.log a line at a time,
   * cutting overlong lines; it resolves when the stream ends (the thread is
   * gone), so output written just before a crash is logged before 'done'.
   */
  private forward(stream: Readable, level: LogLevel, name: string): Promise<void> {
    let buf = '';
    const emit = (line: string): void => {
      if (line && !this.settled && this.allowLog()) this.cb.log(level, { stream: name }, truncate(line));
    };
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) emit(l);
      if (buf.length > MAX_TEXT) {
        emit(buf);
        buf = '';
      }
    });
    return new Promise((resolve) => {
      stream.once('end', () => resolve(emit(buf)));
      stream.once('error', () => resolve());
    });
  }
}
