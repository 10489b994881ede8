// Pure text formatting for the CLI: aligned tables, resource and status views,
// one-line event descriptions. No I/O and no clock: callers pass `now`.

import type { Resource, StatusResult, WorkerLoad } from '#protocol/messages.js';
import { clean, GAP, pad, table, type Align } from '#lib/table.js';
import { workerCell } from './shards-format.js';

export { clean, table };


export interface Column<T> {
  header: string;
  value: (row: T) => string;
  align?: Align;
}

/** pairs lays out key/value lines with the values aligned. */
export function pairs(kv: readonly (readonly [string, string])[]): string[] {
  const w = Math.max(0, ...kv.map(([k]) => k.length));
  return kv.map(([k, v]) => `${pad(clean(k), w, 'left')}${GAP}${clean(v)}`.trimEnd());
}

/** render builds a table from typed rows and column definitions. */
export function render<T>(columns: readonly Column<T>[], rows: readonly T[]): string {
  return table(
    columns.map((c) => c.header),
    rows.map((r) => columns.map((c) => c.value(r))),
    { align: columns.map((c) => c.align ?? 'left') },
  );
}

/** shortId is the first 8 characters of an id, enough to tell resources apart by eye. */
export function shortId(id: string): string {
  return id.slice(0, 8);
}

/** age says how long ago `iso` was, in the largest whole unit: 45s, 12m, 3h, 9d. */
export function age(iso: string, now: Date): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '?';
  const s = Math.max(0, Math.floor((now.getTime() - t) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** percent formats part/whole with one decimal: 0.3%, 100.0%; a zero whole is 0.0%. */
export function percent(part: number, whole: number): string {
  if (!(whole > 0)) return '0.0%';
  return `${((part / whole) * 100).toFixed(1)}%`;
}

/** kindOf is the task kind a resource's spec names (noop when it names none). */
export function kindOf(r: Resource): string {
  return typeof r.spec?.kind === 'string' ? r.spec.kind : 'noop';
}

/** detailOf is the one-line why of a resource's state: its pending reason, last error, or result. */
export function detailOf(r: Resource): string {
  const text = r.state === 'pending' ? r.reason : r.state === 'completed' ? (r.result === undefined ? '' : JSON.stringify(r.result)) : r.error;
  if (!text) return '';
  return text.length > 48 ? `${text.slice(0, 47)}…` : text;
}

export function resourceColumns(now: Date): Column<Resource>[] {
  return [
    { header: 'NAME', value: (r) => r.name },
    { header: 'STATE', value: (r) => r.state ?? '' },
    { header: 'WORKER', value: workerCell },
    { header: 'KIND', value: kindOf },
    { header: 'TRIES', value: (r) => `${r.attempt ?? 0}/${r.failures ?? 0}`, align: 'right' },
    { header: 'ID', value: (r) => shortId(r.id) },
    { header: 'AGE', value: (r) => age(r.createdAt, now), align: 'right' },
    { header: 'REV', value: (r) => String(r.revision), align: 'right' },
    { header: 'DETAIL', value: detailOf },
  ];
}

/** resources is the table `ls` and `get` print; `extra` adds a trailing column (e.g. RESULT for add and rm). */
export function resources(list: readonly Resource[], now: Date, extra?: Column<Resource>): string {
  if (list.length === 0) return 'No resources.';
  return render(extra ? [...resourceColumns(now), extra] : resourceColumns(now), list);
}

/** resourceSummary is the line under `ls`: counts by state. */
export function resourceSummary(list: readonly Resource[]): string {
  const n = list.length;
  const by = new Map<string, number>();
  for (const r of list) by.set(r.state, (by.get(r.state) ?? 0) + 1);
  const states = [...by].sort(([a], [b]) => (a < b ? -1 : 1)).map(([s, k]) => `${k} ${s}`);
  return `${n} resource${n === 1 ? '' : 's'}${states.length > 0 ? `: ${states.join(', ')}` : ''}`;
}

/** status is the `status` view: the leader, every master, and each worker's load against its capacity. */
/** resourceCounts renders the status summary: `1000000 (running 999000, pending 1000)`. */
function resourceCounts(r: NonNullable<StatusResult['resources']>): string {
  const parts = Object.entries(r.byState).filter(([, n]) => (n ?? 0) > 0).sort(([, a], [, b]) => (b ?? 0) - (a ?? 0)).map(([k, n]) => `${k} ${n}`);
  return parts.length > 0 ? `${r.total} (${parts.join(', ')})` : String(r.total);
}

export function status(s: StatusResult): string {
  const masters = s.masters.map((m) => (m === s.leader ? `${m} (leader)` : m));
  const head = pairs([
    ['LEADER', s.leader || '(none)'],
    ['MASTERS', masters.join(', ') || '(none)'],
    ...(s.pending ? ([['PENDING', String(s.pending)]] as Array<[string, string]>) : []),
    ...(s.resources ? ([['RESOURCES', resourceCounts(s.resources)]] as Array<[string, string]>) : []),
  ]);
  if (s.workers.length === 0) return [...head, '', 'No workers.'].join('\n');
  const total: WorkerLoad = {
    id: 'total',
    resources: s.workers.reduce((a, w) => a + w.resources, 0),
    capacity: s.workers.reduce((a, w) => a + w.capacity, 0),
    kinds: [],
    labels: {},
    cordoned: false,
    draining: false,
  };
  const rows = [...s.workers, total];
  const flags = (w: WorkerLoad) => (w.draining ? 'draining' : w.cordoned ? 'cordoned' : '');
  const labels = (w: WorkerLoad) => Object.entries(w.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  const workers = table(
    ['WORKER', 'LOAD', 'USED', 'KINDS', 'LABELS', 'FLAGS'],
    rows.map((w) => [w.id, `${w.resources}/${w.capacity}`, percent(w.resources, w.capacity), (w.kinds ?? []).join(','), labels(w), flags(w)]),
    { align: ['left', 'right', 'right', 'left', 'left', 'left'] },
  );
  return [...head, '', workers].join('\n');
}

// --- events --------------------------------------------------------------

/** EventLike is an event as it arrives: checked only for being an object. */
export type EventLike = Record<string, unknown>;

function str(v: unknown): string {
  if (v === null || v === undefined) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** clock is HH:MM:SS.mmm of an ISO time, in local time unless utc. */
export function clock(iso: string, utc = false): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '??:??:??.???';
  const [h, m, s, ms] = utc
    ? [d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()]
    : [d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds()];
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(h)}:${two(m)}:${two(s)}.${String(ms).padStart(3, '0')}`;
}

/** eventFields gives the subject (what the event is about) and a short detail for each known kind. */
export function eventFields(ev: EventLike): { subject: string; detail: string } {
  const e = (k: string) => str(ev[k]);
  switch (ev.kind) {
    case 'leader.elected':
      return { subject: e('leader'), detail: `term ${e('term')}` };
    case 'leader.resigned':
      return { subject: e('leader'), detail: e('reason') };
    case 'worker.joined':
      return { subject: e('worker'), detail: `capacity ${e('capacity')}` };
    case 'worker.lost':
      return { subject: e('worker'), detail: '' };
    case 'resource.placed':
      return { subject: e('name'), detail: `-> ${e('worker')}` };
    case 'resource.moved':
      return { subject: e('name'), detail: `${e('from')} -> ${ev.to == null ? '(pending)' : e('to')}` };
    case 'resource.pending':
      return { subject: e('name'), detail: 'no worker has room' };
    case 'resource.deleted':
      return { subject: e('name'), detail: ev.worker == null ? 'was pending' : `was on ${e('worker')}` };
    case 'task.started':
      return { subject: e('name'), detail: `on ${e('worker')}${ev.taskKind == null ? '' : ` (${e('taskKind')})`}` };
    case 'task.stopped':
      return { subject: e('name'), detail: `on ${e('worker')}: ${e('reason')}` };
    case 'task.completed':
      return { subject: e('name'), detail: `on ${e('worker')}` };
    case 'task.failed':
      return { subject: e('name'), detail: `on ${e('worker')} (${e('failures')} failed): ${e('error')}` };
    case 'task.restarting':
      return { subject: e('name'), detail: `attempt ${e('attempt')} on ${e('worker')} in ${e('delayMs')} ms` };
    case 'task.progress':
      return { subject: e('name'), detail: e('progress') };
    case 'schedule.fired':
      return { subject: e('name'), detail: `run ${e('run')} for ${e('fireTime')} (${e('cause')})` };
    case 'schedule.skipped':
      return { subject: e('name'), detail: `${e('count')} fire${ev.count === 1 ? '' : 's'} from ${e('fireTime')}: ${e('why')}` };
    case 'run.completed':
      return { subject: e('name'), detail: `run ${e('run')} for ${e('fireTime')}` };
    case 'run.failed':
      return { subject: e('name'), detail: `run ${e('run')} for ${e('fireTime')}: ${e('error')}` };
    default: {
      const { kind: _k, at: _a, by: _b, ...rest } = ev;
      return { subject: '', detail: Object.keys(rest).length ? JSON.stringify(rest) : '' };
    }
  }
}

/** eventCells are the columns of one `watch` line: time, kind, subject, detail, and who said it. */
export function eventCells(ev: EventLike, utc = false): string[] {
  const { subject, detail } = eventFields(ev);
  const by = str(ev.by);
  return [clock(str(ev.at), utc), str(ev.kind), subject, detail, by ? `by ${by}` : ''].map(clean);
}

/** Widest event kind ('resource.deleted'), so kinds line up from the first line. */
const KIND_WIDTH = 16;
/** Details wider than this do not widen the column; they push only their own line's `by`. */
const DETAIL_MAX = 32;

/**
 * EventAligner pads streamed event lines into columns whose widths only grow,
 * so lines stay aligned without knowing what comes next.
 */
export class EventAligner {
  private readonly widths = [12, KIND_WIDTH, 12, 24];

  constructor(private readonly utc = false) {}

  line(ev: EventLike): string {
    const cells = eventCells(ev, this.utc);
    for (let i = 0; i < this.widths.length; i++) {
      const w = cells[i]!.length;
      if (i < this.widths.length - 1 || w <= DETAIL_MAX) this.widths[i] = Math.max(this.widths[i]!, w);
    }
    return cells
      .map((c, i) => (i < this.widths.length ? pad(c, this.widths[i]!, 'left') : c))
      .join(GAP)
      .trimEnd();
  }
}

/** errorLine is how the CLI reports a failed request: `CODE: message`. */
export function errorLine(code: string, message: string): string {
  return `${code}: ${clean(message)}`;
}
