// The keys of a task's store (`ctx.store`): checked here, where the wire
// format lives, so a kind learns of a bad key from the call that used it
// rather than from a JetStream error.

/** A key: dot-separated tokens of letters, digits, `_`, `=` and `-` (what a JetStream KV key may hold, minus wildcards). */
export const STORE_KEY_RE = /^[A-Za-z0-9_=-]+(?:\.[A-Za-z0-9_=-]+)*$/;
/** The longest key, in characters. */
export const MAX_STORE_KEY = 200;

export class StoreKeyError extends Error {
  override name = 'StoreKeyError';
}

/** checkStoreKey returns `key` when it is a valid store key; throws StoreKeyError otherwise. */
export function checkStoreKey(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_STORE_KEY || !STORE_KEY_RE.test(key)) {
    const shown = typeof key === 'string' ? JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key) : typeof key;
    throw new StoreKeyError(`store key ${shown} must be 1 to ${MAX_STORE_KEY} characters of dot-separated tokens of A-Z a-z 0-9 _ = -`);
  }
  return key;
}
