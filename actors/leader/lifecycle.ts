// What a failed attempt leads to, from the resource's restart policy: give up
// (the resource is failed), or start again after a backoff that doubles from
// delayMs up to maxDelayMs, less up to 25% jitter so that many tasks failing
// together do not restart in lockstep. From the second failure on, a policy
// with `reschedule` prefers a worker that has not failed the task (Nomad's
// reschedule; Kubernetes' CrashLoopBackOff doubles the same way).

import type { Spec } from '#protocol/messages.js';
import { restartPolicyOf } from '#protocol/validate.js';

export type AfterFailure = { give: true } | { give: false; delayMs: number; reschedule: boolean };

/** JITTER: the backoff is reduced by up to this fraction. */
const JITTER = 0.25;

/** afterFailure decides, given the failures so far (this one included); random() is in [0, 1). */
export function afterFailure(spec: Spec, failures: number, random: () => number): AfterFailure {
  const p = restartPolicyOf(spec);
  if (failures >= p.attempts) return { give: true };
  const base = Math.min(p.maxDelayMs, p.delayMs * 2 ** Math.min(failures - 1, 40));
  return { give: false, delayMs: Math.round(base * (1 - JITTER * random())), reschedule: p.reschedule && failures >= 2 };
}
