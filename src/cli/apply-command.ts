// `gaffer apply -f` and `gaffer diff -f`: make the cluster's resources match a
// file, or show what that would change. A big file goes as several
// resource.apply requests (MAX_APPLY_ITEMS each, under NATS's payload limit),
// a few in flight, with a progress bar on a terminal; the summary counts what
// happened and lists the items that were refused. Exit 1 if any was.

import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { UsageError } from '#platform/config.js';
import { BadRequestError } from '#protocol/errors.js';
import type { ApplyItemResult, ApplyResult, PruneSelector } from '#protocol/apply.js';
import { LABEL_RE, NAME_RE, ResourceState, type Spec } from '#protocol/messages.js';
import { clean, numbersRight, table } from '#lib/table.js';
import { chunks, parseApplyFile, type FileItem } from './apply-file.js';
import { clientOptions } from './options.js';
import { runClient, type Ctx } from './client-command.js';
import { examples } from './help.js';

/** Requests in flight at once: enough to keep the leader's batches full, few enough to leave room for others. */
const IN_FLIGHT = 4;
/** Refused items listed in the summary; --json has them all. */
const SHOWN_ERRORS = 20;

interface ApplyOptions {
  file: string;
  prunePrefix?: string;
  pruneLabel?: Record<string, string>;
  dryRun?: boolean;
}

export interface ApplySummary {
  dryRun: boolean;
  created: number;
  updated: number;
  unchanged: number;
  refused: number;
  pruned: string[];
  prunedMore: boolean;
  results: ApplyItemResult[];
}

export function labelArg(raw: string, prev: Record<string, string> = {}): Record<string, string> {
  const m = /^([^=]+)=(.*)$/.exec(raw);
  if (!m || !LABEL_RE.test(m[1]!) || !LABEL_RE.test(m[2]!)) throw new InvalidArgumentError(`"${raw}" is not a label k=v (each matching ${LABEL_RE.source})`);
  return { ...prev, [m[1]!]: m[2]! };
}

/** stateArg reads a resource state for ls --state. */
export function stateArg(raw: string): ResourceState {
  if (!(Object.values(ResourceState) as string[]).includes(raw)) throw new InvalidArgumentError(`"${raw}" is not a state (${Object.values(ResourceState).join(', ')})`);
  return raw as ResourceState;
}

/** limitArg reads a positive whole number for ls --limit. */
export function limitArg(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`"${raw}" is not a positive whole number`);
  return n;
}

function prefixArg(raw: string): string {
  if (!NAME_RE.test(raw)) throw new InvalidArgumentError(`"${raw}" is not a name prefix (${NAME_RE.source})`);
  return raw;
}

function readItems(file: string): FileItem[] {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  return parseApplyFile(text, file === '-' ? 'stdin' : file);
}

function pruneOf(o: ApplyOptions): PruneSelector | undefined {
  if (o.prunePrefix !== undefined && o.pruneLabel !== undefined) throw new UsageError('give --prune-prefix or --prune-label, not both');
  if (o.prunePrefix !== undefined) return { prefix: o.prunePrefix };
  if (o.pruneLabel !== undefined) return { selector: o.pruneLabel };
  return undefined;
}

/** bar draws done/total as a bar of `width` characters. */
export function bar(done: number, total: number, width = 30): string {
  const fill = total > 0 ? Math.round((done / total) * width) : width;
  return `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${total}`;
}

/** applyAll sends the file's items in requests, IN_FLIGHT at a time, and puts the answers back in file order. */
export async function applyAll(ctx: Pick<Ctx, 'client'>, items: readonly FileItem[], prune: PruneSelector | undefined, dryRun: boolean, onDone: (n: number) => void): Promise<ApplySummary> {
  const parts = chunks(items);
  // A prune deletes what the selector matches and its own request does not name: with
  // the set cut into several requests, each would prune the others' resources.
  if (prune && parts.length > 1) throw new UsageError(`--prune needs the whole set in one request; this file needs ${parts.length} (split it by prefix, or prune with a later, smaller apply)`);
  const answers: ApplyResult[] = new Array(parts.length);
  let next = 0;
  let done = 0;
  const lane = async (): Promise<void> => {
    for (let i = next++; i < parts.length; i = next++) {
      answers[i] = await ctx.client.apply(parts[i] as Array<{ name: string; spec?: Spec }>, { ...(prune ? { prune } : {}), dryRun });
      done += parts[i]!.length;
      onDone(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, parts.length) }, lane));
  const results = answers.flatMap((a) => a.results);
  const count = (o: string) => results.filter((r) => 'outcome' in r && r.outcome === o).length;
  return {
    dryRun,
    created: count('created'),
    updated: count('updated'),
    unchanged: count('unchanged'),
    refused: results.filter((r) => 'error' in r).length,
    pruned: answers.flatMap((a) => a.pruned),
    prunedMore: answers.some((a) => a.prunedMore === true),
    results,
  };
}

/** summaryTable is the summary for people: counts, then the refused items (and, for a diff, every change). */
export function summaryTable(s: ApplySummary, changes: boolean): string {
  const verb = s.dryRun ? 'would be ' : '';
  const counts = table(
    ['OUTCOME', 'RESOURCES'],
    [
      [`${verb}created`, s.created],
      [`${verb}updated`, s.updated],
      ['unchanged', s.unchanged],
      [`${verb}pruned`, `${s.pruned.length}${s.prunedMore ? '+' : ''}`],
      ['refused', s.refused],
    ],
    { align: numbersRight(2) },
  );
  const parts = [counts];
  if (changes) {
    const rows = [
      ...s.results.flatMap((r) => ('outcome' in r && r.outcome !== 'unchanged' ? [[r.name, r.outcome === 'created' ? '+ create' : '~ update']] : [])),
      ...s.pruned.map((n) => [n, '- delete']),
    ];
    parts.push(rows.length === 0 ? 'No changes.' : table(['NAME', 'CHANGE'], rows.map(([n, c]) => [clean(n!), c!])));
  }
  const refused = s.results.filter((r): r is Extract<ApplyItemResult, { error: unknown }> => 'error' in r);
  if (refused.length > 0) {
    const shown = refused.slice(0, SHOWN_ERRORS).map((r) => [clean(r.name), r.error.code, clean(r.error.message)]);
    parts.push(table(['REFUSED', 'CODE', 'WHY'], shown) + (refused.length > SHOWN_ERRORS ? `\n… and ${refused.length - SHOWN_ERRORS} more (--json lists all)` : ''));
  }
  return parts.join('\n\n');
}

function applyCommand(program: Command, name: 'apply' | 'diff'): void {
  const diff = name === 'diff';
  const cmd = clientOptions(program.command(name))
    .description(diff ? 'show what `gaffer apply -f` would change, changing nothing' : 'create, update (or leave alone) every resource in a file; prune what the file no longer names')
    .requiredOption('-f, --file <path>', 'resources as JSON or YAML: a list of {name, spec}, {resources: [...]}, or YAML documents; - reads stdin')
    .option('--prune-prefix <prefix>', 'delete resources whose name starts with this and the file does not name', prefixArg)
    .option('--prune-label <k=v>', 'delete resources with these spec.labels that the file does not name (repeat for more)', labelArg);
  if (!diff) cmd.option('--dry-run', 'answer what would change, changing nothing (as gaffer diff)');
  cmd
    .addHelpText(
      'after',
      examples(
        diff
          ? ['gaffer diff -f crawls.yaml', 'gaffer diff -f crawls.yaml --prune-prefix crawl-', 'gaffer diff -f crawls.json --json | jq \'.results[] | select(.outcome != "unchanged")\'']
          : ['gaffer apply -f crawls.yaml', 'gaffer apply -f crawls.json --prune-label team=search', 'cat crawls.yaml | gaffer apply -f -'],
      ),
    )
    .action((o: ApplyOptions) =>
      runClient(program, cmd, async (ctx) => {
        const items = readItems(o.file);
        const prune = pruneOf(o);
        const dryRun = diff || o.dryRun === true;
        const tty = process.stderr.isTTY === true && !ctx.json;
        const draw = (n: number) => tty && items.length > 1000 && process.stderr.write(`\r\x1b[2K${diff ? 'comparing' : 'applying'} ${bar(n, items.length)}`);
        const summary = await applyAll(ctx, items, prune, dryRun, draw).finally(() => tty && items.length > 1000 && process.stderr.write('\r\x1b[2K'));
        const human = summaryTable(summary, diff || dryRun);
        if (summary.refused > 0) {
          // The summary is the output; the exit code says some items were refused.
          process.stdout.write(ctx.json ? `${JSON.stringify(summary, null, 2)}\n` : `${human}\n`);
          throw new BadRequestError(`${summary.refused} of ${items.length} resources were refused`);
        }
        return { data: summary, human };
      }),
    );
}

export function addApplyCommands(program: Command): void {
  applyCommand(program, 'apply');
  applyCommand(program, 'diff');
}
