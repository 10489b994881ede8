// A deterministic Tick for the leader's core: the clock time given, the Unix
// epoch as wall time, ids counted up in the shape of a v4 uuid, and a fixed
// "random" number (the middle of its range, so backoff jitter is 12.5%).

import type { Tick } from '#actors/leader/core/batch.js';

let ids = 0;

const uuidOf = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

/**
 * tick is the world at `now` (the leader's clock), for one batch or a whole
 * test. Ids are unique across every tick of the process unless `idsFrom`
 * starts a sequence of its own (to replay the same batches twice).
 */
export function tick(now = 0, random = 0.5, idsFrom?: { n: number }): Tick {
  return {
    now,
    wall: new Date(0).toISOString(),
    newId: () => uuidOf(idsFrom ? ++idsFrom.n : ++ids),
    random: () => random,
  };
}
