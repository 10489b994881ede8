// Probe: how long until the cluster serves again after we broke something.
// From the moment of the break, a new client add starts every `intervalMs`,
// each a GafferClient call that retries what is safe to retry within its own
// deadline. "served" is the earliest moment any of them got a success;
// "single" is how long the one probe sent at the break itself took, which is
// what one patient client would have seen.

import { performance } from 'node:perf_hooks';
import type { NatsConnection } from 'nats';
import { GafferClient } from '../src/client.js';
import { ClientSubject } from '../src/subjects.js';
import { sleep } from './load.js';

export interface Served {
  /** ms from the break to the first successful add (NaN if none within the limit). */
  servedMs: number;
  /** ms the probe sent at the break took to succeed (NaN if it failed). */
  singleMs: number;
  singleError?: string;
  probes: number;
  failedProbes: number;
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

/** served starts probing at once; call it right after sending the signal, with t0 taken just before. */
export async function served(nc: NatsConnection, t0: number, o: ProbeOptions): Promise<Served> {
  const client = new GafferClient(nc, { timeoutMs: o.perCallMs ?? 5000 });
  const interval = o.intervalMs ?? 50;
  const limit = o.limitMs ?? 20000;
  let first = NaN;
  let single = NaN;
  let singleError: string | undefined;
  let failed = 0;
  let firstError: string | undefined;
  const inflight: Promise<void>[] = [];
  for (let k = 0; Number.isNaN(first) && performance.now() - t0 < limit; k++) {
    const p = client
      .call(ClientSubject.add, { name: `${o.prefix}-${k}` })
      .then(() => {
        const at = performance.now() - t0;
        if (Number.isNaN(first) || at < first) first = at;
        if (k === 0) single = at;
      })
      .catch((err: Error) => {
        failed++;
        firstError ??= `${err.name}: ${err.message}`;
        if (k === 0) singleError = `${err.name}: ${err.message}`;
      });
    inflight.push(p);
    const nextAt = t0 + (k + 1) * interval;
    // Wake at the next probe time, or as soon as some probe succeeds.
    while (Number.isNaN(first) && performance.now() < nextAt) await sleep(Math.min(5, Math.max(0, nextAt - performance.now())));
  }
  await Promise.all(inflight);
  const out: Served = { servedMs: round(first), singleMs: round(single), probes: inflight.length, failedProbes: failed };
  if (singleError) out.singleError = singleError;
  if (firstError) out.firstError = firstError;
  return out;
}

const round = (x: number): number => (Number.isFinite(x) ? Math.round(x * 10) / 10 : NaN);
