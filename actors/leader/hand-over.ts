// When a leader whose commit failed hands leadership over rather than reloading.

/**
 * A failed commit leaves the leader's state in doubt. A reload re-reads
 * every record from etcd, which at half a million resources took 33 s of a
 * loaded etcd, long enough to lose the lease. A warm standby's takeover
 * reads nothing: it takes over its copy (standby.ts; 0.95 s at 1M on a
 * quiet machine, bench/standby-build.ts), so past `resources` the leader
 * hands over instead. Not in the first `afterMs` of a term: the master that
 * just handed over to us has no warm copy yet, and would only read etcd
 * itself.
 */
export interface HandOverRule {
  resources: number;
  afterMs: number;
}
/** 20k is a judgment: there a takeover measured 0.5 s and a reload reads about 12 MB; past it the reload grows with what it reads. */
export const HAND_OVER: HandOverRule = { resources: 20_000, afterMs: 60_000 };

/** handsOver: the rule says a reload of `resources` in a term `termMs` old would cost more than a takeover. */
export function handsOver(rule: HandOverRule, resources: number, termMs: number): boolean {
  return resources >= rule.resources && termMs >= rule.afterMs;
}
