// noop runs until it is stopped and does nothing meanwhile: the default kind,
// and the one tests and benchmarks use.

import type { TaskContext, TaskLogic } from './task.js';

export const noop: TaskLogic = {
  run: (ctx: TaskContext) =>
    new Promise<void>((resolve) => {
      if (ctx.signal.aborted) return resolve();
      ctx.signal.addEventListener('abort', () => resolve(), { once: true });
    }),
};
