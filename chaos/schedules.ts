// Scheduled resources under chaos: a few noop resources fire every few
// seconds with overlap "replace" (each fire stops the running attempt before
// the next run starts, so the run checker's overlap rule judges the
// handoffs too). After the run the checker judges the fires from the
// records themselves, which commit with the runs they start (events from a
// killed leader may be lost; a record may not):
//
//   fire-doubled   a fire time started two runs
//   fire-lost      a fire time inside the judged window started no run, and
//                  the schedule counted no skip for it (a fire missed by more
//                  than the catch-up window is skipped and counted; with
//                  "replace" nothing else skips)
//   fire-stalled   the schedule had not handled the fire times up to the end
//                  of the run (its leader never woke for them)
//
// The window judged is the record's run history (the last `history` runs):
// from its oldest run's fire time to the newest handled one.

import type { GafferClient } from '#client/client.js';
import type { Resource } from '#protocol/messages.js';
import type { Workload } from './workload.js';

export interface ScheduleFinding {
  kind: 'fire-doubled' | 'fire-lost' | 'fire-stalled';
  name: string;
  detail: string;
}

export interface ScheduleConfig {
  /** Scheduled resources. */
  count: number;
  /** Their interval, in seconds. */
  everySeconds: number;
}

/** Runs each record keeps: enough for a long run at a few seconds apart. */
const HISTORY = 100;

export class Schedules {
  readonly names: string[];
  private added: string[] = [];

  constructor(
    private readonly wl: Workload,
    private readonly client: GafferClient,
    private readonly cfg: ScheduleConfig,
    private readonly log: (s: string) => void,
  ) {
    this.names = Array.from({ length: cfg.count }, (_, i) => `sched-${i + 1}`);
  }

  async start(): Promise<void> {
    for (const name of this.names) {
      const rec = await this.wl.add(name, { kind: 'noop', schedule: { every: `${this.cfg.everySeconds}s`, overlap: 'replace', history: HISTORY } });
      if (rec.result === 'ok') this.added.push(name);
      else this.log(`${name}: add ended ${rec.result} (${rec.code ?? ''}); its fires are not judged`);
    }
  }

  /** finish pauses every schedule, so the final convergence sees runs that stay put; returns notes. */
  async finish(): Promise<string[]> {
    const notes: string[] = [];
    for (const name of this.added) {
      await this.client.schedule('pause', { name, note: 'end of the chaos run' }).catch((err: Error) => notes.push(`pausing ${name}: ${err.message}`));
    }
    return notes;
  }

  /** check judges each schedule's fires from its record; call after finish. `end` is when the fault phase ended. */
  async check(end: number): Promise<{ findings: ScheduleFinding[]; fires: number }> {
    const findings: ScheduleFinding[] = [];
    let fires = 0;
    for (const name of this.added) {
      const r = await this.client.get(name);
      const out = judge(r, this.cfg.everySeconds * 1000, end);
      fires += out.fires;
      findings.push(...out.findings);
    }
    return { findings, fires };
  }
}

/** judge checks one scheduled resource's record: pure, for the unit tests. */
export function judge(r: Resource, everyMs: number, end: number): { findings: ScheduleFinding[]; fires: number } {
  const findings: ScheduleFinding[] = [];
  const s = r.schedule;
  if (!s) return { findings: [{ kind: 'fire-stalled', name: r.name, detail: 'it has no schedule' }], fires: 0 };
  const runs = [...(r.runs ?? []), ...(s.running ? [s.running] : [])].filter((x) => x.cause === 'schedule');
  const times = runs.map((x) => Date.parse(x.fireTime)).sort((a, b) => a - b);
  for (let i = 1; i < times.length; i++) {
    if (times[i] === times[i - 1]) findings.push({ kind: 'fire-doubled', name: r.name, detail: `fire time ${new Date(times[i]!).toISOString()} started two runs` });
  }
  if (times.length === 0) return { findings: [{ kind: 'fire-stalled', name: r.name, detail: 'no run was started' }], fires: 0 };
  const from = times[0]!;
  const to = times[times.length - 1]!;
  const have = new Set(times);
  const missing: number[] = [];
  for (let t = from; t <= to; t += everyMs) if (!have.has(t)) missing.push(t);
  if (missing.length > s.skipped) {
    findings.push({
      kind: 'fire-lost',
      name: r.name,
      detail: `${missing.length} fire times ran no run and ${s.skipped} were counted skipped: ${missing.slice(0, 5).map((t) => new Date(t).toISOString()).join(', ')}`,
    });
  }
  // The fault phase's last fires must have been handled (two intervals of slack for the one in flight).
  if (to < end - 2 * everyMs - 5000) findings.push({ kind: 'fire-stalled', name: r.name, detail: `the last run fired at ${new Date(to).toISOString()}, the run ended at ${new Date(end).toISOString()}` });
  return { findings, fires: times.length };
}
