// watch tails the cluster's events (events.<kind>) and prints one line per
// event: an aligned human line, or the event itself as a JSON line.
//
// Core NATS keeps nothing: events published while we are disconnected are
// lost, so a disconnect is reported on the error stream. Cancel with the
// AbortSignal; watch then closes its subscriptions and resolves.

import type { NatsConnection } from 'nats';
import { json } from '#protocol/codec.js';
import { EVENT_KINDS } from '#protocol/events.js';
import { EventAligner, type EventLike } from './format.js';
import { subjects } from '#protocol/subjects.js';

export interface WatchOptions {
  /** JSON lines (one event per line, exactly as published) instead of human lines. */
  json: boolean;
  /** Subjects to follow, from eventSubjects; default every event. */
  subjects?: string[];
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  signal: AbortSignal;
  /** Print times in UTC instead of local time. */
  utc?: boolean;
  /** Called once the subscriptions are live on the server. */
  onReady?: (subjects: string[]) => void;
}

const PREFIXES = [...new Set(EVENT_KINDS.map((k) => k.split('.')[0]!))];

/** EventFilterError: a filter names no known event kind or family. */
export class EventFilterError extends Error {
  override name = 'EventFilterError';
}

/**
 * eventSubjects turns filters ("resource", "task.started") into the subjects
 * to subscribe to, dropping any a wider filter already covers. No filters: all events.
 */
export function eventSubjects(filters: readonly string[]): string[] {
  if (filters.length === 0) return [subjects.allEvents];
  const families = new Set<string>();
  const kinds = new Set<string>();
  for (const f of filters) {
    if (PREFIXES.includes(f)) families.add(f);
    else if ((EVENT_KINDS as readonly string[]).includes(f)) kinds.add(f);
    else {
      throw new EventFilterError(
        `unknown event ${JSON.stringify(f)}; use a family (${PREFIXES.join(', ')}) or a kind (${EVENT_KINDS.join(', ')})`,
      );
    }
  }
  const out = [...families].sort().map((f) => subjects.event(`${f}.>`));
  for (const k of [...kinds].sort()) if (!families.has(k.split('.')[0]!)) out.push(subjects.event(k));
  return out;
}

/** decodeEvent reads one event message, undefined when malformed. The subject is authoritative for the event's kind. */
export function decodeEvent(subject: string, data: Uint8Array): EventLike | undefined {
  let v: unknown;
  try {
    v = json.decode(data);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const { kind, at, by, ...rest } = v as EventLike;
  const prefix = subjects.event('');
  const fromSubject = subject.startsWith(prefix) ? subject.slice(prefix.length) : undefined;
  return { kind: fromSubject ?? kind, at, by, ...rest };
}

/** watch subscribes and prints until the signal aborts or the connection closes. */
export async function watch(nc: NatsConnection, opts: WatchOptions): Promise<void> {
  const list = opts.subjects ?? [subjects.allEvents];
  const aligner = new EventAligner(opts.utc ?? false);
  const write = (s: string) => opts.out.write(`${s}\n`);
  const subs = list.map((subject) =>
    nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        const ev = decodeEvent(msg.subject, msg.data);
        if (!ev) {
          opts.err.write(`gaffer: skipping a malformed event on ${msg.subject}\n`);
          return;
        }
        write(opts.json ? JSON.stringify(ev) : aligner.line(ev));
      },
    }),
  );
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') opts.err.write('gaffer: disconnected from NATS; events published meanwhile are lost\n');
      else if (s.type === 'reconnect') opts.err.write(`gaffer: reconnected to NATS (${String(s.data)})\n`);
    }
  })().catch(() => undefined);

  await nc.flush();
  opts.onReady?.(list);

  await new Promise<void>((resolve) => {
    if (opts.signal.aborted) return resolve();
    opts.signal.addEventListener('abort', () => resolve(), { once: true });
    void nc.closed().then(() => resolve());
  });
  for (const s of subs) s.unsubscribe();
}
