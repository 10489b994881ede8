// Health is what /healthz (on the metrics port) answers: a liveness report
// that supervisors act on (a Kubernetes liveness probe, a compose healthcheck,
// `gaffer dev`). A process whose event loop is stuck does not answer at all,
// which a probe's timeout catches; one that answers says which of its own
// checks fail: its event loop running late, NATS disconnected, or etcd not
// answering its lease keepalives.

import type { NatsConnection } from 'nats';
import { loopLagMs, STALL_MS } from './stall.js';

/** A check gives undefined when all is well, else why not. */
export type Check = () => string | undefined;

export interface HealthReport {
  ok: boolean;
  /** Every check by name: "ok", or why it fails. */
  checks: Record<string, string>;
}

export type HealthProbe = () => HealthReport;

/** healthProbe runs the named checks; the process is healthy when every one passes. */
export function healthProbe(checks: Record<string, Check>): HealthProbe {
  return () => {
    const out: Record<string, string> = {};
    let ok = true;
    for (const [name, check] of Object.entries(checks)) {
      let why: string | undefined;
      try {
        why = check();
      } catch (err) {
        why = `check failed: ${(err as Error).message}`;
      }
      out[name] = why ?? 'ok';
      if (why !== undefined) ok = false;
    }
    return { ok, checks: out };
  };
}

/** loopCheck fails while the event loop runs later than the stall threshold (watchStalls must be on). */
export function loopCheck(): Check {
  return () => {
    const lag = loopLagMs();
    return lag > STALL_MS ? `event loop ${Math.round(lag)} ms late` : undefined;
  };
}

/** natsCheck fails while the connection is down (reconnecting or closed). */
export function natsCheck(nc: NatsConnection): Check {
  let down = false;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') down = true;
      else if (s.type === 'reconnect') down = false;
    }
  })().catch(() => undefined);
  return () => (nc.isClosed() ? 'NATS connection closed' : down ? 'NATS disconnected (reconnecting)' : undefined);
}

/** etcdCheck fails while `alive` says our lease is not known to be alive (etcd has not answered its keepalives). */
export function etcdCheck(alive: () => boolean): Check {
  return () => (alive() ? undefined : 'etcd not answering (lease not known alive)');
}
