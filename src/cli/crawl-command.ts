// `gaffer crawl NAME [--follow]`: a crawl's progress, per shard and combined
// (crawl-format.ts). --follow redraws it every --every ms until the crawl
// completes or fails, or Ctrl-C; --json prints the view (with --follow: one
// JSON line per refresh).

import type { Command } from 'commander';
import { clientOptions, everyArg, merged, nameArg } from './options.js';
import { connect, runClient } from './client-command.js';
import { Exit, fail, flushStdout } from './exit.js';
import { examples } from './help.js';
import { crawlTable, crawlView } from './crawl-format.js';
import { QueueCounter } from '#platform/nats/shard-queues.js';
import type { GafferClient } from '#client/client.js';
import type { Resource } from '#protocol/messages.js';

const DONE = new Set(['completed', 'failed']);

/** view reads the crawl and, best effort, its shards' queue backlogs (a NATS user without stream info permission gets none). */
async function view(client: GafferClient, name: string) {
  const r: Resource = await client.get(name);
  let backlog: number[] | undefined;
  if (r.shards && !DONE.has(r.state)) backlog = await new QueueCounter(client.nc).count(r.id, r.shards.length).catch(() => undefined);
  return crawlView(r, backlog);
}

export function addCrawlCommand(program: Command): void {
  const cmd = clientOptions(program.command('crawl'))
    .description("show a crawl's progress: fetched, queued, errors, duplicates, parked hosts and pages/s, per shard and combined")
    .argument('<name>', 'crawl resource name', nameArg)
    .option('--follow', 'refresh until the crawl completes or fails (Ctrl-C stops)')
    .option('--every <ms>', 'with --follow, how often to refresh (default 1000)', everyArg)
    .addHelpText('after', examples(['gaffer crawl site', 'gaffer crawl site --follow', 'gaffer crawl site --json | jq .combined.fetched']))
    .action(async (name: string, o: { follow?: boolean; every?: number }) => {
      if (!o.follow) {
        return runClient(program, cmd, async (ctx) => {
          const v = await view(ctx.client, name);
          return { data: v, human: crawlTable(v) };
        });
      }
      const opts = merged(program, cmd);
      let conn: Awaited<ReturnType<typeof connect>>;
      try {
        conn = await connect(opts);
      } catch (err) {
        return fail(err);
      }
      let stop = false;
      process.on('SIGINT', () => (stop = true));
      process.on('SIGTERM', () => (stop = true));
      const tty = process.stdout.isTTY === true && opts.json !== true;
      try {
        for (;;) {
          const v = await view(conn.client, name);
          if (opts.json) process.stdout.write(`${JSON.stringify(v)}\n`);
          else process.stdout.write(`${tty ? '\x1b[H\x1b[2J' : '\n'}${crawlTable(v)}\n`);
          if (stop || DONE.has(v.state)) break;
          const until = Date.now() + (o.every ?? 1000);
          while (!stop && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
          if (stop) break;
        }
      } catch (err) {
        await conn.client.close().catch(() => undefined);
        return fail(err);
      }
      await conn.client.close().catch(() => undefined);
      await flushStdout();
      process.exit(Exit.ok);
    });
}
