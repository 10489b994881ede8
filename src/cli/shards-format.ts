// How the CLI shows a sharded resource: its workers in one cell of `ls`,
// and under `get`, one row per shard (state, worker, attempt, idle, progress).

import type { Resource } from '#protocol/messages.js';
import type { ShardView } from '#protocol/shards.js';
import { table, type Align } from '#lib/table.js';

interface Column {
  header: string;
  value: (s: ShardView) => string;
  align?: Align;
}

/** workerCell is what `ls` shows as a resource's worker: a sharded one's distinct workers, or `-`. */
export function workerCell(r: Resource): string {
  if (!r.shards) return r.worker ?? '-';
  const workers = [...new Set(r.shards.map((s) => s.worker).filter((w): w is string => w !== null))].sort();
  return `${r.shards.length} shards${workers.length ? `: ${workers.join(',')}` : ''}`;
}

const progressText = (p: unknown): string => {
  if (p === undefined) return '';
  const t = JSON.stringify(p);
  return t.length > 48 ? `${t.slice(0, 47)}…` : t;
};

const COLUMNS: Column[] = [
  { header: 'SHARD', value: (s) => String(s.index), align: 'right' },
  { header: 'STATE', value: (s) => s.state },
  { header: 'WORKER', value: (s) => s.worker ?? '-' },
  { header: 'ATTEMPT', value: (s) => String(s.attempt), align: 'right' },
  { header: 'ACTIVITY', value: (s) => (s.idle === undefined ? '' : s.idle ? 'idle' : 'busy') },
  { header: 'PROGRESS', value: (s) => progressText(s.progress) || (s.error ?? '') },
];

/** shardTable is the per-shard table under `get` of a sharded resource ('' for any other). */
export function shardTable(r: Resource): string {
  if (!r.shards) return '';
  const rows = r.shards.map((s) => COLUMNS.map((c) => c.value(s)));
  return `\n\n${table(COLUMNS.map((c) => c.header), rows, { align: COLUMNS.map((c) => c.align ?? 'left') })}`;
}
