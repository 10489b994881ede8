// The client commands: add, rm, get, restart, ls, status, watch, results, crawl, and the
// fleet commands (fleet-commands.ts). Each runs within
// runClient (client-command.ts), which connects, times and prints.

import type { Command } from 'commander';
import { addAndWait } from '#client/wait.js';
import type { Resource, Spec } from '#protocol/messages.js';
import * as fmt from './format.js';
import { eventSubjects, watch } from './watch.js';
import { Exit, fail, flushStdout } from './exit.js';
import { clientOptions, connOptions, merged, nameArg, specArg, workerArg } from './options.js';
import { connect, runClient, withoutOk } from './client-command.js';
import { Progress } from './progress.js';
import { examples } from './help.js';
import { addResultsCommand } from './results.js';
import { addCrawlCommand } from './crawl-command.js';
import { addFleetCommands, candidateTable } from './fleet-commands.js';
import { shardTable } from './shards-format.js';
import { addScheduleCommands, nextFire, runsTable, scheduleTable } from './schedule-commands.js';
import { addApplyCommands, labelArg, limitArg, stateArg } from './apply-command.js';
import type { ListFilter } from '#protocol/list-query.js';

export function addClientCommands(program: Command): void {
  const add = clientOptions(program.command('add'))
    .description('add a resource (idempotent: an existing name is returned unchanged)')
    .argument('<name>', 'resource name, [A-Za-z0-9][A-Za-z0-9._-]{0,127}', nameArg)
    .option('--spec <json>', 'resource spec as a JSON object, e.g. {"kind":"noop"}', specArg)
    .option('--wait', 'return once a worker reports the task running (within --timeout)')
    .option('--dry-run', 'say where it would go and why, writing nothing')
    .addHelpText(
      'after',
      examples([
        'gaffer add books',
        'gaffer add books --dry-run --spec \'{"constraints":[{"key":"zone","op":"in","values":["eu"]}]}\'',
        'gaffer add books --spec \'{"kind":"noop"}\' --wait --timeout 30000',
        'gaffer add books --json | jq -r .resource.worker',
      ]),
    )
    .action((name: string, o: { spec?: Spec; wait?: boolean; dryRun?: boolean }) =>
      runClient(program, add, async (ctx) => {
        if (o.dryRun) {
          const r = withoutOk(await ctx.client.dryRun(name, o.spec));
          return { data: r, human: `${name} would go to ${r.worker ?? '(no worker)'}${r.reason ? `: ${r.reason}` : ''}\n\n${candidateTable(r.candidates)}` };
        }
        if (o.wait) {
          const progress = new Progress(name);
          const res = await addAndWait(ctx.client, name, o.spec, { deadline: ctx.deadline, onProgress: (s) => progress.update(s) }).finally(() =>
            progress.done(),
          );
          const result = `${res.created ? 'created' : 'exists'}, running`;
          const shown = { ...res.resource, worker: res.runningOn };
          return { data: res, human: fmt.resources([shown], new Date(), { header: 'RESULT', value: () => result }) };
        }
        const res = withoutOk(await ctx.client.add(name, o.spec));
        const result = res.created ? 'created' : 'exists';
        return { data: res, human: fmt.resources([res.resource], new Date(), { header: 'RESULT', value: () => result }) };
      }),
    );

  const rm = clientOptions(program.command('rm'))
    .description('delete a resource (its task stops on its worker)')
    .argument('<name>', 'resource name', nameArg)
    .addHelpText('after', examples(['gaffer rm books', 'gaffer rm books --json']))
    .action((name: string) =>
      runClient(program, rm, async (ctx) => {
        const r = await ctx.client.delete(name);
        return { data: r, human: fmt.resources([r], new Date(), { header: 'RESULT', value: () => 'deleted' }) };
      }),
    );

  const restart = clientOptions(program.command('restart'))
    .description('run a completed or failed resource again, from its checkpoint (failures reset)')
    .argument('<name>', 'resource name', nameArg)
    .addHelpText('after', examples(['gaffer restart books', 'gaffer restart books --json']))
    .action((name: string) =>
      runClient(program, restart, async (ctx) => {
        const r = await ctx.client.restart(name);
        return { data: r, human: fmt.resources([r], new Date(), { header: 'RESULT', value: () => 'restarted' }) };
      }),
    );

  const get = clientOptions(program.command('get'))
    .description('show one resource')
    .argument('<name>', 'resource name', nameArg)
    .addHelpText('after', examples(['gaffer get books', 'gaffer get books --json | jq .spec']))
    .action((name: string) =>
      runClient(program, get, async (ctx) => {
        const r = await ctx.client.get(name);
        const now = new Date();
        // A scheduled resource shows its schedule and runs under it.
        const runs = r.schedule ? `\n\n${scheduleTable([r], now)}\n\n${runsTable(r, now)}` : '';
        return { data: r, human: `${fmt.resources([r], now)}${runs}${shardTable(r)}` };
      }),
    );

  const ls = clientOptions(program.command('ls'))
    .description('list resources, sorted by name (filtered by the leader, a page at a time)')
    .option('--worker <id>', 'only resources assigned to this worker', workerArg)
    .option('--state <state>', 'only resources in this state (pending, starting, running, restarting, completed, failed)', stateArg)
    .option('--kind <kind>', 'only resources of this task kind')
    .option('--label <k=v>', 'only resources with this spec.labels value (repeat for more)', labelArg)
    .option('--prefix <prefix>', 'only names that start with this')
    .option('--limit <n>', 'at most this many', limitArg)
    .addHelpText('after', examples(['gaffer ls', 'gaffer ls --worker w1', 'gaffer ls --state pending --limit 20', 'gaffer ls --label team=search --json | jq -r \'.[].name\'']))
    .action((o: { worker?: string; state?: ListFilter['state']; kind?: string; label?: Record<string, string>; prefix?: string; limit?: number }) =>
      runClient(program, ls, async (ctx) => {
        const filter: ListFilter = {
          ...(o.worker !== undefined ? { worker: o.worker } : {}),
          ...(o.state !== undefined ? { state: o.state } : {}),
          ...(o.kind !== undefined ? { kind: o.kind } : {}),
          ...(o.label !== undefined ? { labels: o.label } : {}),
          ...(o.prefix !== undefined ? { prefix: o.prefix } : {}),
        };
        const list: Resource[] = [];
        for (let after: string | undefined; ; ) {
          const page = await ctx.client.page(after, undefined, filter);
          list.push(...page.resources);
          if (!page.next || (o.limit !== undefined && list.length >= o.limit)) break;
          after = page.next;
        }
        if (o.limit !== undefined) list.splice(o.limit);
        const where = o.worker === undefined ? '' : ` on ${o.worker}`;
        const now = new Date();
        // Scheduled resources show when they fire next.
        const next = list.some((r) => r.schedule) ? { header: 'NEXT FIRE', value: (r: (typeof list)[number]) => nextFire(r, now) } : undefined;
        const human = list.length === 0 ? `No resources${where}.` : `${fmt.resources(list, now, next)}\n\n${fmt.resourceSummary(list)}${where}`;
        return { data: list, human };
      }),
    );

  const status = clientOptions(program.command('status'))
    .description('show the leader, the masters, and each worker with its load and capacity')
    .addHelpText('after', examples(['gaffer status', 'gaffer status --json | jq \'.workers[] | select(.resources > 0)\'']))
    .action(() =>
      runClient(program, status, async (ctx) => {
        const s = withoutOk(await ctx.client.status());
        return { data: s, human: fmt.status(s) };
      }),
    );

  const watchCmd = connOptions(program.command('watch'))
    .description('tail what the cluster does, live (events.>), one line per event; Ctrl-C stops')
    .argument('[filters...]', 'event families (leader, worker, resource, task) or kinds (e.g. task.started); default all')
    .option('--json', 'print each event as one JSON line, exactly as published')
    .option('--utc', 'print times in UTC instead of local time')
    .addHelpText('after', examples(['gaffer watch', 'gaffer watch resource task.started', 'gaffer watch --json | jq -c \'select(.kind == "worker.lost")\'']))
    .action(async (filters: string[], o: { json?: boolean; utc?: boolean }) => {
      let subjectList: string[];
      try {
        subjectList = eventSubjects(filters);
      } catch (err) {
        return fail(err);
      }
      let conn: Awaited<ReturnType<typeof connect>>;
      try {
        conn = await connect(merged(program, watchCmd));
      } catch (err) {
        return fail(err);
      }
      const ac = new AbortController();
      process.on('SIGINT', () => ac.abort());
      process.on('SIGTERM', () => ac.abort());
      process.stdout.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EPIPE') ac.abort(); // the reader went away (e.g. `| head`): that is a normal end
      });
      await watch(conn.client.nc, {
        json: o.json === true,
        subjects: subjectList,
        out: process.stdout,
        err: process.stderr,
        signal: ac.signal,
        utc: o.utc === true,
        onReady: (s) => process.stderr.write(`watching ${s.join(' ')} on ${conn.url} (Ctrl-C to stop)\n`),
      });
      await conn.client.close().catch(() => undefined);
      await flushStdout();
      process.exit(Exit.ok);
    });

  addResultsCommand(program);
  addCrawlCommand(program);
  addFleetCommands(program);
  addScheduleCommands(program);
  addApplyCommands(program);
}
