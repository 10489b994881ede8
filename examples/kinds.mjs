// An example task-kind module: `gaffer worker --tasks ./examples/kinds.mjs`.
//
// The default export maps kind names to { run(ctx) }. Each kind runs in its
// own worker thread; see the README section "Writing a task kind" for what
// ctx offers. A resource picks its kind with spec.kind:
//
//   gaffer add count-1 --spec '{"kind":"countdown","from":20}'
//   gaffer results count-1

/** Resolves after ms, or rejects as soon as the signal aborts. */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });
}

export default {
  // Counts down from spec.from, one step per spec.stepMs, emitting each step
  // as a result and checkpointing as it goes. Moved to another worker (or
  // restarted) it resumes from its checkpoint; re-emitted steps carry the
  // same id, so each is stored once.
  countdown: {
    async run(ctx) {
      const from = Number.isInteger(ctx.spec.from) ? ctx.spec.from : 10;
      const stepMs = Number.isInteger(ctx.spec.stepMs) ? ctx.spec.stepMs : 100;
      let n = ctx.checkpointed?.next ?? from;
      ctx.log.info({ from, resumeAt: n, attempt: ctx.attempt }, 'counting down');
      while (n > 0) {
        try {
          await sleep(stepMs, ctx.signal);
        } catch {
          // Stopped (moved, deleted, worker stopping): save where we are and return.
          await ctx.checkpoint({ next: n }).catch(() => undefined);
          return;
        }
        await ctx.emit({ n }, { id: `step-${n}` });
        n--;
        await ctx.checkpoint({ next: n });
        ctx.progress({ left: n });
      }
      return { counted: from, attempt: ctx.attempt };
    },
  },

  // Fails its first spec.failures attempts, then succeeds: restarts in action.
  flaky: {
    async run(ctx) {
      const failures = Number.isInteger(ctx.spec.failures) ? ctx.spec.failures : 2;
      if (ctx.attempt <= failures) throw new Error(`attempt ${ctx.attempt} fails on purpose`);
      return { succeededOnAttempt: ctx.attempt };
    },
  },

  // Always fails: it ends `failed` once its restart attempts are used up.
  doomed: {
    async run(ctx) {
      throw new Error(`doomed (attempt ${ctx.attempt})`);
    },
  },
};
