// InlineHost runs a kind's `run(ctx)` on the worker's own event loop: no
// thread to start, no copies across a message port. The price is that an
// inline kind cannot be killed. stop() aborts the signal and, if run has not
// returned within the grace, gives up on it: the attempt is reported as
// stopped (forced) and its context is closed, so whatever it still calls is
// refused or dropped, but its code keeps whatever CPU and memory it holds,
// and a kind that spins blocks the whole worker. So inline kinds must honour
// their signal and never block: only gaffer's own built-ins run inline;
// every kind loaded from a module runs in a ThreadHost.

import type { TaskKind } from '#kinds/api.js';
import { errorText, makeContext, toJson, type ContextHandle } from './context.js';
import type { RunningTask, TaskCallbacks, TaskEnd, TaskHost, TaskStart } from './host.js';

export class InlineHost implements TaskHost {
  constructor(private readonly kind: TaskKind) {}

  start(start: TaskStart, cb: TaskCallbacks): RunningTask {
    return new InlineTask(this.kind, start, cb);
  }
}

class InlineTask implements RunningTask {
  readonly done: Promise<TaskEnd>;
  private resolveDone!: (end: TaskEnd) => void;
  private ended = false;
  private stopping = false;
  private readonly abort = new AbortController();
  private readonly context: ContextHandle;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(kind: TaskKind, start: TaskStart, cb: TaskCallbacks) {
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.context = makeContext(start, cb, this.abort.signal);
    // run starts after start() has returned, so the caller holds the RunningTask
    // before any callback fires; a synchronous throw becomes a rejection.
    Promise.resolve()
      .then(() => kind.run(this.context.ctx))
      .then(
        (result) => this.end(completed(result)),
        (err: unknown) => this.end({ kind: 'failed', error: errorText(err) }),
      );
  }

  stop(graceMs: number): Promise<TaskEnd> {
    if (this.ended) return this.done;
    if (!this.stopping) {
      this.stopping = true;
      this.abort.abort(new Error('task stopping'));
    }
    // Even with no grace, a timer tick: an inline kind runs on this thread, so it
    // cannot run meanwhile, and one that returns on abort ends as a clean stop.
    this.timers.push(setTimeout(() => this.end({ kind: 'stopped', forced: true }), Math.max(0, graceMs)));
    return this.done;
  }

  private end(e: TaskEnd): void {
    if (this.ended) return;
    this.ended = true;
    this.context.close();
    for (const t of this.timers) clearTimeout(t);
    // Once stop was called, whatever run does is a stop (see RunningTask.stop).
    this.resolveDone(this.stopping && e.kind !== 'stopped' ? { kind: 'stopped', forced: false } : e);
  }
}

function completed(result: unknown): TaskEnd {
  if (result === undefined) return { kind: 'completed', result: undefined };
  try {
    return { kind: 'completed', result: toJson(result, 'result') };
  } catch (err) {
    return { kind: 'failed', error: errorText(err) };
  }
}
