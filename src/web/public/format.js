// Pure formatting for the dashboard: event summaries, progress numbers, times.
// No DOM here, so it reads like the wire contract it follows (README, Events).

export const STATES = ['pending', 'starting', 'running', 'restarting', 'completed', 'failed', 'scheduled'];

/** Kinds after which /api/state is refetched: anything that moves a resource or changes a worker or the leader. */
export function changesState(kind) {
  if (typeof kind !== 'string') return false;
  if (kind === 'task.progress') return false;
  return kind.startsWith('resource.') || kind.startsWith('worker.') || kind.startsWith('leader.') || kind.startsWith('task.') || kind.startsWith('schedule.') || kind.startsWith('run.');
}

/** compact renders any JSON value on one short line. */
export function compact(value, max = 80) {
  let s;
  try {
    s = typeof value === 'string' ? value : JSON.stringify(value);
  } catch {
    s = String(value);
  }
  if (s === undefined) return '';
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

export function fmtNumber(n) {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

export function fmtMs(ms) {
  if (typeof ms !== 'number') return '?';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
}

/** clock gives HH:MM:SS of an ISO time, in local time. */
export function clock(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '--:--:--';
  return d.toLocaleTimeString([], { hour12: false, hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/**
 * progressOf reads a progress value: its numeric fields, and a fraction done
 * when it has a recognizable pair ({fetched, queued}, {done, total}, …).
 */
export function progressOf(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { numbers: [], fraction: undefined };
  const numbers = Object.entries(value).filter(([, v]) => typeof v === 'number' && Number.isFinite(v));
  const num = (k) => (typeof value[k] === 'number' && Number.isFinite(value[k]) ? value[k] : undefined);
  const done = num('fetched') ?? num('done') ?? num('completed') ?? num('processed');
  let total = num('total') ?? num('max') ?? num('maxPages');
  if (total === undefined && done !== undefined && num('queued') !== undefined) total = done + num('queued');
  if (total === undefined && done !== undefined && num('left') !== undefined) total = done + num('left');
  const fraction = done !== undefined && total !== undefined && total > 0 ? Math.min(1, Math.max(0, done / total)) : undefined;
  return { numbers, fraction };
}

/** load is a worker's resources/capacity, 0..1 (capacity 0 or missing: 0). */
export function load(w) {
  const cap = Number(w?.capacity);
  const n = Number(w?.resources);
  return cap > 0 && n >= 0 ? Math.min(1, n / cap) : 0;
}

/** summary says what one event means, in a line. */
export function summary(e) {
  switch (e.kind) {
    case 'leader.elected':
      return `${e.leader} leads, term ${e.term}`;
    case 'leader.resigned':
      return `${e.leader} resigned: ${e.reason}`;
    case 'worker.joined':
      return `${e.worker} joined (capacity ${e.capacity})`;
    case 'worker.lost':
      return `${e.worker} lost`;
    case 'worker.cordoned':
      return `${e.worker} cordoned`;
    case 'worker.uncordoned':
      return `${e.worker} uncordoned`;
    case 'worker.drained':
      return `${e.worker} drained: ${e.moved} moved, ${e.remaining} left`;
    case 'resource.placed':
      return `${e.name} → ${e.worker}`;
    case 'resource.moved':
      return `${e.name} ${e.from} → ${e.to ?? 'pending'}${e.reason ? ` (${e.reason})` : ''}`;
    case 'resource.pending':
      return `${e.name} is pending`;
    case 'resource.deleted':
      return `${e.name} deleted${e.worker ? ` from ${e.worker}` : ''}`;
    case 'task.started':
      return `${e.name} attempt ${e.attempt} started on ${e.worker}`;
    case 'task.stopped':
      return `${e.name} stopped on ${e.worker}: ${e.reason}`;
    case 'task.completed':
      return `${e.name} completed on ${e.worker}`;
    case 'task.failed':
      return `${e.name} failed on ${e.worker} (${e.failures}): ${compact(e.error, 120)}`;
    case 'task.restarting':
      return `${e.name} restarts on ${e.worker} in ${fmtMs(e.delayMs)} (attempt ${e.attempt})`;
    case 'task.progress':
      return `${e.name} ${compact(e.progress)}`;
    default: {
      const { kind: _k, at: _a, by: _b, ...rest } = e;
      return compact(rest, 120);
    }
  }
}

/** countStates counts resources by state, every known state present. */
export function countStates(resources) {
  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const r of resources) counts[r.state] = (counts[r.state] ?? 0) + 1;
  return counts;
}

/** combineProgress sums shards' numeric progress fields (as the leader does for resource.get); undefined when none. */
export function combineProgress(values) {
  const out = {};
  let any = false;
  for (const v of values) {
    if (v === null || v === undefined || typeof v !== 'object' || Array.isArray(v)) continue;
    for (const [k, x] of Object.entries(v)) {
      if (typeof x !== 'number') continue;
      out[k] = (out[k] ?? 0) + x;
      any = true;
    }
  }
  return any ? out : undefined;
}

/**
 * applyProgress applies a task.progress event in place: to its resource, or,
 * for a shard (`name/index`), to that shard of its resource, whose combined
 * progress is summed again.
 */
export function applyProgress(resources, ev) {
  const slash = String(ev.name).lastIndexOf('/');
  if (slash < 0) return resources.map((r) => (r.name === ev.name && r.id === ev.id ? { ...r, progress: ev.progress } : r));
  const parent = ev.name.slice(0, slash);
  const index = Number(ev.name.slice(slash + 1));
  return resources.map((r) => {
    if (r.name !== parent || !Array.isArray(r.shards)) return r;
    const shards = r.shards.map((s) => (s.index === index ? { ...s, progress: ev.progress } : s));
    return { ...r, shards, progress: combineProgress(shards.map((s) => s.progress)) };
  });
}
