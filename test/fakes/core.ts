// The leader's core as its unit tests drive it: a plan context with a
// deterministic Tick, and plan() followed by the shell's pure encoder, so a
// test can look at the transactions a batch writes. No store, no await.

import { plan } from '#actors/leader/core/plan.js';
import type { Input, Plan, PlanContext } from '#actors/leader/core/batch.js';
import type { ClusterState } from '#actors/leader/core/state.js';
import { txns, units, type Txn, type Unit } from '#actors/leader/encode.js';
import { keys } from '#protocol/keys.js';
import { encodeOutcomes } from '#protocol/outcomes.js';
import { tick } from './tick.js';

/** context is a plan context for leader m1 of term 7 at clock time 0 (override any of it). */
export function context(over: Partial<PlanContext> = {}): PlanContext {
  return { leaderId: 'm1', term: 7, members: ['m1'], ...tick(), ...over };
}

/** planned plans a batch and encodes it as the leader would, dedupe records included (numbered within the batch). */
export function planned(s: ClusterState, batch: readonly Input[], ctx: PlanContext): Plan & { txns: Txn[] } {
  let seq = 0;
  const p = plan(s, batch, ctx);
  return { ...p, txns: txns(p, ctx.term, (entries) => ({ put: keys.dedupe(ctx.term, 0, ++seq), value: encodeOutcomes(entries) })) };
}

/** flush encodes what the state's change log holds now (rules called directly, outside plan), as term 0. */
export function flush(s: ClusterState): Unit[] {
  return units(s.takeChanges(), 0);
}
