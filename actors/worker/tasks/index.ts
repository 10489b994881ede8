// The registry of task kinds; spec.kind picks one (TaskKind in protocol.ts lists them).

import { TaskKind, type Resource } from '../../../src/protocol/messages.js';
import { taskKindOf } from '../../../src/protocol/validate.js';
import type { Logger } from '../../../src/platform/log.js';
import { noop } from './noop.js';
import { TaskActor, type TaskLogic } from './task.js';

const KINDS: Record<TaskKind, TaskLogic> = {
  [TaskKind.noop]: noop,
};

export function startTask(resource: Resource, log: Logger): TaskActor {
  return new TaskActor(resource, KINDS[taskKindOf(resource.spec)], log);
}

export { TaskActor };
