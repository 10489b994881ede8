// `gaffer results NAME [--follow] [--json]`: a resource's stored task results,
// oldest first, read from JetStream. Results outlive their resource, so the
// name of a removed resource still shows what it produced, and a name that
// never produced anything simply has none (exit 0).
//
// Human lines: local time, the emitting resource's short id (a name removed
// and added again gets a new id), and the item as compact JSON, cleaned of
// control characters and cut to the terminal's width. --json: one result per
// line, exactly as readResults yields it: {seq, at, resourceId, id, item}.

import type { Command } from 'commander';
import { readResults, type ResultRecord } from '#platform/nats/results.js';
import { subjects } from '#protocol/subjects.js';
import { clean, clock, shortId } from './format.js';
import { Exit, fail, flushStdout } from './exit.js';
import { clientOptions, merged, nameArg } from './options.js';
import { runArg } from './schedule-commands.js';
import { connect } from './client-command.js';
import { examples } from './help.js';

/** Human lines are cut to this many characters when stdout is not a terminal. */
export const MAX_LINE = 200;

/** stamp is an ISO time as local `YYYY-MM-DD HH:MM:SS.mmm`: results can be days old. */
export function stamp(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '????-??-?? ??:??:??.???';
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${clock(iso)}`;
}

/** resultLine is one result for people: time, short resource id, compact JSON, at most `width` characters. */
export function resultLine(r: ResultRecord, width = MAX_LINE): string {
  const line = clean(`${stamp(r.at)}  ${shortId(r.resourceId) || '-'}${r.run !== undefined ? `  run ${r.run}` : ''}  ${JSON.stringify(r.item) ?? 'null'}`);
  return line.length <= width ? line : `${line.slice(0, Math.max(0, width - 1))}…`;
}

/** writeLine writes one line and, when stdout's buffer is full, waits for it to drain (or for the end). */
function writeLine(s: string, signal: AbortSignal): Promise<void> | undefined {
  if (process.stdout.write(`${s}\n`)) return undefined;
  return new Promise((resolve) => {
    const done = () => {
      process.stdout.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    process.stdout.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

export function addResultsCommand(program: Command): void {
  const cmd = clientOptions(program.command('results'))
    .description('print the task results a resource stored, oldest first')
    .argument('<name>', 'resource name; results outlive the resource', nameArg)
    .option('--follow', 'after the stored results, keep printing new ones until Ctrl-C')
    .option('--run <n>', 'only the results of this run of a scheduled resource', runArg)
    .addHelpText(
      'after',
      examples([
        'gaffer results books',
        'gaffer results books --follow',
        'gaffer results nightly --run 3',
        'gaffer results books --json | jq -c .item',
      ]),
    )
    .action(async (name: string, o: { follow?: boolean; run?: number }) => {
      const opts = merged(program, cmd);
      const follow = o.follow === true;
      let conn: Awaited<ReturnType<typeof connect>>;
      try {
        conn = await connect(opts);
      } catch (err) {
        return fail(err);
      }
      const ac = new AbortController();
      process.on('SIGINT', () => ac.abort());
      process.on('SIGTERM', () => ac.abort());
      process.stdout.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EPIPE') ac.abort(); // the reader went away (e.g. `| head`): a normal end
      });
      const width = process.stdout.isTTY && process.stdout.columns > 0 ? process.stdout.columns : MAX_LINE;
      let printed = 0;
      try {
        const results = readResults(conn.client.nc, name, {
          follow,
          signal: ac.signal,
          timeoutMs: conn.timeoutMs,
          ...(o.run !== undefined ? { run: o.run } : {}),
          onReady: () => {
            if (follow) process.stderr.write(`following ${subjects.results(name)} on ${conn.url} (Ctrl-C to stop)\n`);
          },
          onSkip: (seq) => process.stderr.write(`gaffer: skipping result ${seq}: not JSON\n`),
        });
        for await (const r of results) {
          if (ac.signal.aborted) break;
          printed++;
          await writeLine(opts.json ? JSON.stringify(r) : resultLine(r, width), ac.signal);
        }
      } catch (err) {
        await conn.client.close().catch(() => undefined);
        return fail(err);
      }
      if (printed === 0 && !follow && !opts.json) process.stderr.write(`gaffer: no results for ${name}\n`);
      await conn.client.close().catch(() => undefined);
      await flushStdout();
      process.exit(Exit.ok);
    });
}
