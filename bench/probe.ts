// Probe: how long until a new leader serves after we took the old one away.
// From the moment of the break, a new client add starts every `intervalMs`,
// each a GafferClient call that retries what is safe to retry within its own
// deadline. An add counts as served by the new leader when etcd committed it
// after the old leader's term ended (see terms.ts); adds the old leader still
// answered while draining are counted apart.
//   servedMs  earliest success committed by a later leader
//   anyMs     earliest success of any kind (the old leader may still answer during a graceful stop)
//   singleMs  how long the probe sent at the break took: what one patient client saw
//   worstMs   the longest any successful probe waited (the stall a client could see)

import { performance } from 'node:perf_hooks';
import type { NatsConnection } from 'nats';
import { GafferClient } from '#client/client.js';
import { ClientSubject } from '#protocol/subjects.js';
import type { AddResult } from '#protocol/messages.js';
import { sleep } from './load.js';
import type { TermEnd } from './terms.js';

export interface Served {
  servedMs: number;
  anyMs: number;
  singleMs: number;
  worstMs: number;
  /** ms from the break until the old leader's election key was deleted. */
  termEndMs: number;
  probes: number;
  /** Successes committed by the old leader after the break. */
  drained: number;
  failedProbes: number;
  singleError?: string;
  firstError?: string;
}

export interface ProbeOptions {
  prefix: string;
  intervalMs?: number;
  /** Deadline of each probe's call, retries included (the client default is 5 s). */
  perCallMs?: number;
  /** Stop starting probes this long after the break. */
  limitMs?: number;
}

const round = (x: number): number => (Number.isFinite(x) ? Math.round(x * 10) / 10 : NaN);

/** served starts probing at once; call it right after sending the signal, with t0 taken just before. */
export async function served(nc: NatsConnection, t0: number, term: TermEnd, o: ProbeOptions): Promise<Served> {
  const client = new GafferClient(nc, { timeoutMs: o.perCallMs ?? 5000 });
  const interval = o.intervalMs ?? 50;
  const limit = o.limitMs ?? 20000;
  const wins: Array<{ at: number; revision: number; waited: number }> = [];
  let single = NaN;
  let singleError: string | undefined;
  let failed = 0;
  let firstError: string | undefined;
  const byNewLeader = () => {
    const end = term.revision();
    return end !== undefined && wins.some((w) => w.revision > end);
  };
  const inflight: Promise<void>[] = [];
  for (let k = 0; !byNewLeader() && performance.now() - t0 < limit; k++) {
    const sent = performance.now();
    const p = client
      .call<AddResult>(ClientSubject.add, { name: `${o.prefix}-${k}` })
      .then((r) => {
        const now = performance.now();
        wins.push({ at: now - t0, revision: r.resource.revision, waited: now - sent });
        if (k === 0) single = now - t0;
      })
      .catch((err: Error) => {
        failed++;
        firstError ??= `${err.name}: ${err.message}`;
        if (k === 0) singleError = `${err.name}: ${err.message}`;
      });
    inflight.push(p);
    const nextAt = t0 + (k + 1) * interval;
    while (!byNewLeader() && performance.now() < nextAt) await sleep(Math.min(5, Math.max(0, nextAt - performance.now())));
  }
  await Promise.all(inflight);
  const end = term.revision() ?? Infinity;
  const fresh = wins.filter((w) => w.revision > end);
  const out: Served = {
    servedMs: round(Math.min(...fresh.map((w) => w.at))),
    anyMs: round(Math.min(...wins.map((w) => w.at))),
    singleMs: round(single),
    worstMs: round(Math.max(...wins.map((w) => w.waited))),
    termEndMs: round(term.at() - t0),
    probes: inflight.length,
    drained: wins.length - fresh.length,
    failedProbes: failed,
  };
  if (singleError) out.singleError = singleError;
  if (firstError) out.firstError = firstError;
  return out;
}
