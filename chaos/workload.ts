// Workload: a few client loops adding and deleting names from a fixed pool,
// recording every request with its outcome. At most one request per name is
// in flight, so each name's requests are ordered by the client's clock (the
// checker relies on that). A name whose request ended ambiguously (it may
// still be applied later, e.g. re-sent by a forwarding master) is left alone
// for a while and until the cluster has recovered after it, so that a late
// application does not land in the middle of the next requests.

import type { GafferClient } from '#client/client.js';
import type { Spec } from '#protocol/messages.js';
import { GafferError } from '#protocol/errors.js';
import type { ChaosConfig } from './config.js';
import { classify, type OpKind, type OpRecord } from './check.js';
import type { Rng } from '#harness/rng.js';
import { sleep } from '#platform/clock.js';

type Belief = 'present' | 'absent' | 'unknown';


export function poolNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `chaos-${String(i).padStart(2, '0')}`);
}

export class Workload {
  readonly ops: OpRecord[] = [];
  readonly names: string[];
  private readonly inflight = new Set<string>();
  private readonly lastEnd = new Map<string, number>();
  private readonly belief = new Map<string, Belief>();
  /** name -> when its ambiguous request ended. */
  private readonly quarantined = new Map<string, number>();
  private lastRecovery = 0;
  private stopping = false;
  private loops: Array<Promise<void>> = [];
  private seq = 0;

  constructor(
    private readonly client: GafferClient,
    private readonly cfg: ChaosConfig['workload'],
    private readonly rng: Rng,
  ) {
    this.names = poolNames(cfg.names);
  }

  start(): void {
    this.loops = Array.from({ length: this.cfg.inflight }, () => this.loop());
  }

  /** stop lets the requests in flight finish (each within the client timeout) and starts no more. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  /** markRecovered tells the workload the cluster recovered (quarantined names may be released after it). */
  markRecovered(at = Date.now()): void {
    this.lastRecovery = at;
  }

  /**
   * dirty lists the names a convergence check must not judge: requests in
   * flight, requests that ended at or after `since`, and quarantined names.
   */
  dirty(since: number): Set<string> {
    const out = new Set<string>([...this.inflight, ...this.quarantined.keys()]);
    for (const [name, end] of this.lastEnd) if (end >= since) out.add(name);
    return out;
  }

  /** completedAfter counts requests that were sent and answered (in any way) after `t`. */
  completedAfter(t: number): number {
    let n = 0;
    for (let i = this.ops.length - 1; i >= 0 && n < 1000; i--) if (this.ops[i]!.start > t) n++;
    return n;
  }

  get quarantinedNames(): string[] {
    return [...this.quarantined.keys()].sort();
  }

  private release(now: number): void {
    for (const [name, failedAt] of this.quarantined) {
      if (now - failedAt >= this.cfg.quarantineMs && this.lastRecovery > failedAt) this.quarantined.delete(name);
    }
  }

  private pick(): string | undefined {
    this.release(Date.now());
    const idle = this.names.filter((n) => !this.inflight.has(n) && !this.quarantined.has(n));
    return idle.length === 0 ? undefined : this.rng.pick(idle);
  }

  private choose(name: string): OpKind {
    const b = this.belief.get(name) ?? 'absent';
    // Mostly flip the state; sometimes repeat it (add of a present name, delete of an absent one).
    if (b === 'present') return this.rng.chance(0.75) ? 'delete' : 'add';
    if (b === 'absent') return this.rng.chance(0.85) ? 'add' : 'delete';
    return this.rng.chance(0.5) ? 'add' : 'delete';
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const name = this.pick();
      if (!name) {
        await sleep(50);
        continue;
      }
      this.inflight.add(name);
      try {
        await this.once(name, this.choose(name));
      } finally {
        this.inflight.delete(name);
      }
      await sleep(this.rng.between(this.cfg.thinkMs[0], this.cfg.thinkMs[1]));
    }
  }

  /** add adds one name with a spec, recorded like any workload request (the crawl load uses it). */
  async add(name: string, spec: Spec): Promise<OpRecord> {
    this.inflight.add(name);
    try {
      return await this.once(name, 'add', spec);
    } finally {
      this.inflight.delete(name);
    }
  }

  private async once(name: string, op: OpKind, spec?: Spec): Promise<OpRecord> {
    const seq = ++this.seq;
    const start = Date.now();
    let rec: OpRecord;
    try {
      if (op === 'add') {
        const r = await this.client.add(name, spec);
        rec = { seq, name, op, start, end: Date.now(), result: 'ok', created: r.created, id: r.resource.id };
      } else {
        const r = await this.client.delete(name);
        rec = { seq, name, op, start, end: Date.now(), result: 'ok', id: r.id };
      }
    } catch (err) {
      const code = err instanceof GafferError ? err.code : 'CLIENT_ERROR';
      rec = {
        seq, name, op, start, end: Date.now(), result: classify(op, code), code,
        message: ((err as Error).message ?? String(err)).slice(0, 300),
      };
    }
    this.ops.push(rec);
    this.lastEnd.set(name, rec.end);
    if (rec.result === 'ambiguous') {
      this.belief.set(name, 'unknown');
      this.quarantined.set(name, rec.end);
    } else if (rec.result === 'ok' || rec.result === 'not_found') {
      this.belief.set(name, op === 'add' ? 'present' : 'absent');
    }
    return rec;
  }
}
