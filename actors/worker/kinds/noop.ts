// noop runs until it is stopped and does nothing meanwhile: the default kind,
// and the one tests and benchmarks use. It never completes on its own.

import type { TaskKind } from '#kinds/api.js';

export const noop: TaskKind = {
  run: (ctx) =>
    new Promise<void>((resolve) => {
      if (ctx.signal.aborted) return resolve();
      ctx.signal.addEventListener('abort', () => resolve(), { once: true });
    }),
};
