// A deterministic Tick for the leader's core: the clock time given, the Unix
// epoch as wall time, ids counted up in the shape of a v4 uuid, and a fixed
// "random" number (the middle of its range, so backoff jitter is 12.5%).

import type { Tick } from '#actors/leader/core/batch.js';

let ids = 0;

/** tick is the world at `now` (the leader's clock), for one batch or a whole test. */
export function tick(now = 0, random = 0.5): Tick {
  return {
    now,
    wall: new Date(0).toISOString(),
    newId: () => `00000000-0000-4000-8000-${String(++ids).padStart(12, '0')}`,
    random: () => random,
  };
}
