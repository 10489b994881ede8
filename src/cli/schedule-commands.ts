// `gaffer schedule ls|pause|resume|trigger|backfill`: the schedules of
// scheduled resources (spec.schedule), and the operations on them.

import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { Resource } from '#protocol/messages.js';
import { Overlap, parseTime } from '#protocol/schedule.js';
import type { ScheduleAction } from '#protocol/schedule-ops.js';
import { table } from '#lib/table.js';
import { clientOptions, nameArg } from './options.js';
import { runClient, withoutOk } from './client-command.js';
import { examples } from './help.js';
import { age } from './format.js';

/** runArg reads a run number (1 or more). */
export function runArg(raw: string): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`"${raw}" is not a run number (1, 2, …)`);
  return n;
}

function timeArg(raw: string): number {
  try {
    return parseTime(/^\d+$/.test(raw) ? Number(raw) : raw, 'time');
  } catch {
    throw new InvalidArgumentError(`"${raw}" is not an ISO 8601 time (e.g. 2026-12-01T03:00:00Z) or epoch milliseconds`);
  }
}

function overlapArg(raw: string): Overlap {
  if (!(Object.values(Overlap) as string[]).includes(raw)) throw new InvalidArgumentError(`overlap must be one of ${Object.values(Overlap).join(', ')}`);
  return raw as Overlap;
}

/** until says how far ahead `iso` is: in 45s, in 12m, in 3h, in 9d. */
export function until(iso: string, now: Date): string {
  return `in ${age(now.toISOString(), new Date(Date.parse(iso)))}`;
}

/** nextFire is the NEXT FIRE cell of a resource: when, and how far ahead; "paused" or "-" otherwise. */
export function nextFire(r: Resource, now: Date): string {
  if (!r.schedule) return '';
  if (r.schedule.paused) return 'paused';
  const next = r.schedule.next[0];
  return next ? `${next} (${until(next, now)})` : '-';
}

function every(r: Resource): string {
  const s = r.spec.schedule as { cron?: string; timeZone?: string; every?: string; overlap?: string } | undefined;
  if (!s) return '';
  return s.cron !== undefined ? `cron ${s.cron}${s.timeZone ? ` ${s.timeZone}` : ''}` : `every ${s.every}`;
}

/** scheduleTable lists scheduled resources: spec, overlap, next fire, the running run and the last one. */
export function scheduleTable(list: readonly Resource[], now: Date): string {
  const rows = list.filter((r) => r.schedule).map((r) => {
    const s = r.schedule!;
    const last = r.runs?.[0];
    const overlap = (r.spec.schedule as { overlap?: string }).overlap ?? 'skip';
    return [
      r.name,
      every(r),
      overlap,
      nextFire(r, now),
      s.running ? `run ${s.running.run} (${age(s.running.startedAt, now)})` : '-',
      last ? `run ${last.run} ${last.state}${last.endedAt ? ` ${age(last.endedAt, now)} ago` : ''}` : '-',
      String(s.skipped),
      s.note ?? '',
    ];
  });
  if (rows.length === 0) return 'No scheduled resources.';
  return table(['NAME', 'SCHEDULE', 'OVERLAP', 'NEXT FIRE', 'RUNNING', 'LAST RUN', 'SKIPPED', 'NOTE'], rows, {
    align: ['left', 'left', 'left', 'left', 'left', 'left', 'right', 'left'],
  });
}

/** runsTable lists a scheduled resource's running and ended runs, newest first. */
export function runsTable(r: Resource, now: Date): string {
  const runs = [...(r.schedule?.running ? [r.schedule.running] : []), ...(r.runs ?? [])];
  if (runs.length === 0) return 'No runs yet.';
  return table(
    ['RUN', 'FIRE TIME', 'CAUSE', 'STATE', 'STARTED', 'ENDED', 'RESULT'],
    runs.map((x) => [
      String(x.run),
      x.fireTime,
      x.cause,
      x.state,
      `${age(x.startedAt, now)} ago`,
      x.endedAt ? `${age(x.endedAt, now)} ago` : '-',
      x.error ?? (x.result === undefined ? '' : JSON.stringify(x.result).slice(0, 48)),
    ]),
    { align: ['right', 'left', 'left', 'left', 'right', 'right', 'left'] },
  );
}

export function addScheduleCommands(program: Command): void {
  const group = program.command('schedule').description('scheduled resources (spec.schedule): list, pause, resume, trigger, backfill');

  const ls = clientOptions(group.command('ls'))
    .description('list scheduled resources with their next fire, running run and last run')
    .addHelpText('after', examples(['gaffer schedule ls', "gaffer schedule ls --json | jq '.[].schedule.next[0]'"]))
    .action(() =>
      runClient(program, ls, async (ctx) => {
        const list = (await ctx.client.list()).filter((r) => r.schedule);
        return { data: list, human: scheduleTable(list, new Date()) };
      }),
    );

  const simple: Array<[ScheduleAction, string, boolean]> = [
    ['pause', 'stop firing (a running run goes on); fires while paused are skipped and counted', true],
    ['resume', 'fire again from now on', true],
    ['trigger', 'start a run now (the overlap policy applies)', false],
  ];
  for (const [action, description, note] of simple) {
    const cmd = clientOptions(group.command(action)).description(description).argument('<name>', 'resource name', nameArg);
    if (note) cmd.option('--note <text>', 'why, shown with the schedule');
    cmd.addHelpText('after', examples([note ? `gaffer schedule ${action} nightly --note "site migration"` : `gaffer schedule ${action} nightly`]));
    cmd.action((name: string, o: { note?: string }) =>
      runClient(program, cmd, async (ctx) => {
        const res = withoutOk(await ctx.client.schedule(action, { name, ...(o.note !== undefined ? { note: o.note } : {}) }));
        const what = action === 'trigger' ? `${name}: ${res.fired ?? 'started'}` : `${name} ${action}d`;
        return { data: res, human: `${what}\n\n${scheduleTable([res.resource], new Date())}` };
      }),
    );
  }

  const backfill = clientOptions(group.command('backfill'))
    .description('run every fire time of the schedule in a past range (the overlap policy applies; --overlap queue runs them all)')
    .argument('<name>', 'resource name', nameArg)
    .requiredOption('--from <time>', 'first time (ISO 8601 or epoch ms), included', timeArg)
    .requiredOption('--to <time>', 'last time, included', timeArg)
    .option('--overlap <policy>', `overlap policy for these runs: ${Object.values(Overlap).join(', ')} (default the schedule's)`, overlapArg)
    .addHelpText('after', examples(['gaffer schedule backfill nightly --from 2026-12-01T00:00:00Z --to 2026-12-03T00:00:00Z --overlap queue']))
    .action((name: string, o: { from: number; to: number; overlap?: Overlap }) =>
      runClient(program, backfill, async (ctx) => {
        const res = withoutOk(await ctx.client.schedule('backfill', { name, from: o.from, to: o.to, ...(o.overlap ? { overlap: o.overlap } : {}) }));
        const human = `${name}: ${res.fires ?? 0} fire times, ${res.started ?? 0} started, ${res.queued ?? 0} queued, ${res.skipped ?? 0} skipped`;
        return { data: res, human: `${human}\n\n${scheduleTable([res.resource], new Date())}` };
      }),
    );
}
