// Supervisor is `gaffer dev`'s liveness probe: like a Kubernetes liveness
// probe or systemd's WatchdogSec, it restarts a master or worker whose
// /healthz stops answering (a stuck event loop, a paused or dead process).
// A 503 (NATS or etcd unreachable, a slow loop) is only reported: restarting
// does not bring a server back, and the process recovers by itself when it
// returns.

import type { Child } from './child.js';

export interface SupervisorOptions {
  /** How often each process is asked. */
  intervalMs: number;
  /** How long one answer may take. */
  timeoutMs: number;
  /** Unanswered probes in a row before a restart. */
  failures: number;
  /** Told about every restart and every change of health. */
  note: (line: string) => void;
}

export const DEV_SUPERVISOR: Omit<SupervisorOptions, 'note'> = { intervalMs: 1000, timeoutMs: 1000, failures: 3 };

interface Watched {
  child: Child;
  url: string;
  /** Answered since it was last (re)started: only then do missed probes count. */
  seen: boolean;
  missed: number;
  lastCode: number | undefined;
}

export class Supervisor {
  private readonly watched: Watched[] = [];
  private readonly timer: NodeJS.Timeout;
  private busy = false;
  private stopped = false;

  constructor(children: ReadonlyArray<{ child: Child; url: string }>, private readonly opts: SupervisorOptions) {
    for (const c of children) this.watched.push({ ...c, seen: false, missed: 0, lastCode: undefined });
    this.timer = setInterval(() => void this.round(), opts.intervalMs);
    this.timer.unref();
  }

  private async round(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      await Promise.all(this.watched.map((w) => this.probe(w)));
    } finally {
      this.busy = false;
    }
  }

  private async probe(w: Watched): Promise<void> {
    let code: number | undefined;
    try {
      code = (await fetch(w.url, { signal: AbortSignal.timeout(this.opts.timeoutMs) })).status;
    } catch {
      code = undefined;
    }
    if (this.stopped) return;
    if (code !== undefined) {
      // Changes only: a process starting up answers 503 until its lease is granted.
      if (w.lastCode !== undefined && code !== w.lastCode) this.opts.note(`${w.child.spec.name}: /healthz ${code}`);
      w.seen = true;
      w.missed = 0;
      w.lastCode = code;
      return;
    }
    if (!w.seen || ++w.missed < this.opts.failures) return;
    this.opts.note(`${w.child.spec.name}: /healthz unanswered ${w.missed} times in a row; restarting it`);
    w.seen = false;
    w.missed = 0;
    w.lastCode = undefined;
    await w.child.kill();
    if (!this.stopped) w.child.start();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}
