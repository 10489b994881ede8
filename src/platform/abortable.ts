// Waiting for a promise or a stop, without leaking.
//
// `Promise.race([p, stopped])` with `stopped` a promise that settles only when
// a long run ends attaches a reaction to `stopped` on every call, and that
// reaction keeps the race's result alive (the value `p` resolved to) until
// `stopped` settles: a loop that races each item it takes against it retains
// every item it ever took. orAborted listens on the signal instead and stops
// listening as soon as `p` settles, so nothing is left behind per call.

/** orAborted settles as `p` does, or resolves to `onAbort` once `signal` aborts (at once if it already has). */
export function orAborted<T, U>(p: Promise<T>, signal: AbortSignal, onAbort: U): Promise<T | U> {
  return new Promise<T | U>((resolve, reject) => {
    const abort = (): void => resolve(onAbort);
    p.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(err);
      },
    );
    if (signal.aborted) resolve(onAbort);
    else signal.addEventListener('abort', abort, { once: true });
  });
}
