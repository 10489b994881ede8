// A task is the long-running work behind one resource on one worker. Each
// kind implements TaskLogic; TaskActor gives it an address (the resource
// name), a status, and one-at-a-time start and stop.

import { Actor, ActorStatus } from '../../../src/platform/actor.js';
import type { Resource } from '../../../src/protocol/messages.js';
import type { Logger } from '../../../src/platform/log.js';

export interface TaskContext {
  resource: Resource;
  /** Aborted when the task must stop; long work should watch it. */
  signal: AbortSignal;
  log: Logger;
}

/** TaskLogic runs until its signal aborts; `run` resolving early means the task finished on its own. */
export interface TaskLogic {
  run(ctx: TaskContext): Promise<void>;
}

export class TaskActor {
  private readonly abort = new AbortController();
  private readonly actor: Actor<'start'>;
  private done: Promise<void> = Promise.resolve();
  readonly startedAt = Date.now();

  constructor(readonly resource: Resource, logic: TaskLogic, log: Logger) {
    const ctx: TaskContext = { resource, signal: this.abort.signal, log };
    this.actor = new Actor<'start'>(() => {
      this.done = logic.run(ctx).catch((err) => log.error({ err, name: resource.name }, 'task failed'));
    });
    this.actor.start();
    this.actor.send('start');
  }

  get status(): ActorStatus {
    return this.actor.status;
  }

  /** stop aborts the task and resolves once its logic has returned. Idempotent. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.actor.stop();
    await this.done;
  }
}
