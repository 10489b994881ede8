// Fleet commands: cordon, uncordon, drain (optionally waiting, with a
// progress bar on a terminal), and explain. `add --dry-run` is in commands.ts.

import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { subjects } from '#protocol/subjects.js';
import { json } from '#protocol/codec.js';
import type { Candidate, DrainResult, ExplainResult } from '#protocol/messages.js';
import { TimeoutError } from '#protocol/errors.js';
import { table } from '#lib/table.js';
import { clientOptions, workerArg } from './options.js';
import { runClient, withoutOk } from './client-command.js';
import { examples } from './help.js';

/** durationArg reads 30s, 2m, 1500ms or a plain number of ms. */
export function durationArg(raw: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(raw.trim());
  if (!m) throw new InvalidArgumentError(`"${raw}" is not a duration (e.g. 30s, 2m, 1500ms)`);
  const n = Number(m[1]) * (m[2] === 'm' ? 60_000 : m[2] === 's' ? 1000 : 1);
  if (n < 1 || n > 3_600_000) throw new InvalidArgumentError(`"${raw}" must be between 1 ms and 1 h`);
  return n;
}

/** candidates renders explain's ranking: eligible workers with their score, then the excluded with the rule. */
export function candidateTable(list: readonly Candidate[]): string {
  if (list.length === 0) return 'No live workers.';
  return table(['WORKER', 'SCORE', 'EXCLUDED BY'], list.map((c) => ('score' in c ? [c.worker, c.score.toFixed(3), ''] : [c.worker, '', c.excluded])), {
    align: ['left', 'right', 'left'],
  });
}

function bar(done: number, total: number, width = 30): string {
  const fill = total > 0 ? Math.round((done / total) * width) : width;
  return `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${total}`;
}

export function addFleetCommands(program: Command): void {
  for (const op of ['cordon', 'uncordon'] as const) {
    const cmd = clientOptions(program.command(op))
      .description(op === 'cordon' ? 'stop placing new work on a worker (what it runs stays)' : 'let a cordoned worker take new work again')
      .argument('<worker>', 'worker id', workerArg)
      .addHelpText('after', examples([`gaffer ${op} w1`]))
      .action((worker: string) =>
        runClient(program, cmd, async (ctx) => {
          await (op === 'cordon' ? ctx.client.cordon(worker) : ctx.client.uncordon(worker));
          return { data: { worker, cordoned: op === 'cordon' }, human: `${worker} ${op === 'cordon' ? 'cordoned' : 'uncordoned'}` };
        }),
      );
  }

  const drain = clientOptions(program.command('drain'))
    .description('cordon a worker and move its resources elsewhere; each stops there before it starts elsewhere')
    .argument('<worker>', 'worker id', workerArg)
    .option('--deadline <duration>', 'how long each move waits for the worker to stop its task before fencing it (default 30s)', durationArg)
    .option('--wait', 'return once every move has finished (within --timeout)')
    .addHelpText('after', examples(['gaffer drain w1', 'gaffer drain w1 --deadline 10s --wait --timeout 120000']))
    .action((worker: string, o: { deadline?: number; wait?: boolean }) =>
      runClient(program, drain, async (ctx) => {
        const { nc } = ctx.client;
        let drained: (r: { moved: number; remaining: number }) => void = () => undefined;
        const done = new Promise<{ moved: number; remaining: number }>((resolve) => (drained = resolve));
        let started = 0;
        const subs = o.wait
          ? [
              nc.subscribe(subjects.event('worker.drained'), {
                callback: (_e, m) => {
                  const ev = json.decode(m.data) as { worker?: string; moved?: number; remaining?: number };
                  if (ev.worker === worker) drained({ moved: ev.moved ?? 0, remaining: ev.remaining ?? 0 });
                },
              }),
              nc.subscribe(subjects.event('task.started'), {
                callback: () => {
                  started++;
                },
              }),
            ]
          : [];
        try {
          await nc.flush();
          const res = withoutOk(await ctx.client.drain(worker, o.deadline)) as DrainResult;
          if (!o.wait) return { data: res, human: `${worker} draining: ${res.moved} moving, ${res.remaining} cannot move` };
          const tty = process.stderr.isTTY === true;
          const timer = tty ? setInterval(() => process.stderr.write(`\r\x1b[2Kdraining ${worker} ${bar(Math.min(started, res.moved), res.moved)}`), 200) : undefined;
          try {
            const left = Math.max(1, ctx.deadline - Date.now());
            const final = await Promise.race([
              done,
              new Promise<never>((_, reject) => setTimeout(() => reject(new TimeoutError(`${worker} did not finish draining within the timeout`)), left).unref()),
            ]);
            return { data: { ...res, ...final, drained: true }, human: `${worker} drained: ${final.moved} moved, ${final.remaining} could not move` };
          } finally {
            if (timer) clearInterval(timer);
            if (tty) process.stderr.write('\r\x1b[2K');
          }
        } finally {
          for (const s of subs) s.unsubscribe();
        }
      }),
    );

  const explain = clientOptions(program.command('explain'))
    .description('say why a resource is where it is, or why it is pending, with every live worker ranked')
    .argument('<name>', 'resource name')
    .addHelpText('after', examples(['gaffer explain books', 'gaffer explain books --json | jq .candidates']))
    .action((name: string) =>
      runClient(program, explain, async (ctx) => {
        const r = withoutOk(await ctx.client.explain(name)) as ExplainResult;
        return { data: r, human: `${name}: ${r.worker ?? '(no worker)'}\n${r.reason}\n\n${candidateTable(r.candidates)}` };
      }),
    );
}
