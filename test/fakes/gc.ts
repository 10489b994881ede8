// Counting what the garbage collector frees, for tests that check a loop
// retains nothing per item. `gc` is exposed at run time (the test runner
// does not pass --expose-gc), through a new context that sees the flag.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** alive collects twice (after the current job, so WeakRefs made in it may go) and says how many of `refs` still point at something. */
export async function alive(refs: ReadonlyArray<WeakRef<object>>): Promise<number> {
  for (let i = 0; i < 2; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  return refs.filter((r) => r.deref() !== undefined).length;
}
