// addAndWait adds a resource and resolves once a worker reports it running:
// from `events.task.started` (subscribed before the add is sent, so the event
// cannot be missed) or, as a fallback, by polling where it is assigned and
// asking that worker. Everything happens within one deadline.

import { ErrorCode, GafferError, NotFoundError, TimeoutError } from '#protocol/errors.js';
import { ClientSubject, subjects } from '#protocol/subjects.js';
import { json } from '#protocol/codec.js';
import type { AddResult, Resource, Spec, WorkerStatusResult } from '#protocol/messages.js';
import { withRetry } from '#platform/retry.js';
import type { GafferClient } from './client.js';

export interface WaitOptions {
  /** Date.now() by which it must be running. */
  deadline: number;
  /** Told each state change in words: "placed on w1", "pending: no worker has room", … */
  onProgress?: (state: string) => void;
}

class NotRunningYet extends Error {
  override name = 'NotRunningYet';
}

type Ev = Record<string, unknown>;

function decode(data: Uint8Array): Ev | undefined {
  try {
    const v = json.decode(data);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Ev) : undefined;
  } catch {
    return undefined;
  }
}

export async function addAndWait(client: GafferClient, name: string, spec: Spec | undefined, opts: WaitOptions): Promise<AddResult & { runningOn: string }> {
  const { nc } = client;
  const progress = opts.onProgress ?? (() => undefined);
  const left = () => Math.max(1, opts.deadline - Date.now());
  let id: string | undefined;
  const started = new Map<string, string>(); // resource id -> worker, from events
  const done = new AbortController();
  let settle: (worker: string) => void = () => undefined;
  const running = new Promise<string>((resolve) => (settle = (w) => (done.abort(), resolve(w))));

  const subs = [
    nc.subscribe(subjects.event('task.started'), {
      callback: (_err, msg) => {
        const ev = decode(msg.data);
        if (ev?.name !== name || typeof ev.id !== 'string' || typeof ev.worker !== 'string') return;
        started.set(ev.id, ev.worker);
        if (ev.id === id) settle(ev.worker);
      },
    }),
    nc.subscribe(subjects.event('resource.>'), {
      callback: (_err, msg) => {
        const ev = decode(msg.data);
        if (ev?.name !== name || (id !== undefined && ev.id !== id)) return;
        const kind = msg.subject.slice(subjects.event('').length);
        if (kind === 'resource.placed') progress(`placed on ${String(ev.worker)}`);
        else if (kind === 'resource.moved') progress(ev.to == null ? 'pending: no worker has room' : `moved to ${String(ev.to)}`);
        else if (kind === 'resource.pending') progress('pending: no worker has room');
        else if (kind === 'resource.deleted') progress('deleted');
      },
    }),
  ];
  const total = left();
  const deadline = AbortSignal.timeout(total);
  try {
    await nc.flush();
    const body = spec === undefined ? { name } : { name, spec };
    const { ok: _ok, ...res } = await client.call<AddResult & { ok: true }>(ClientSubject.add, body, left());
    id = res.resource.id;
    const early = started.get(id);
    if (early) settle(early);
    progress(res.resource.worker ? `placed on ${res.resource.worker}` : 'pending: no worker has room');

    const stop = AbortSignal.any([done.signal, deadline]);
    const poll = withRetry(
      async () => {
        const worker = await whereRunning(client, name, left, (cur) => (id = cur));
        if (!worker) throw new NotRunningYet();
        settle(worker);
      },
      { initialMs: 200, maxMs: 1000, signal: stop, retryable: (e) => e instanceof NotRunningYet },
    );
    const timedOut = new Promise<never>((_, reject) =>
      deadline.addEventListener('abort', () => reject(new TimeoutError(`${name} was not reported running within ${total} ms`)), { once: true }),
    );
    const runningOn = await Promise.race([running, timedOut, poll.then(() => running, (err) => (err instanceof NotRunningYet ? running : Promise.reject(err)))]);
    progress(`running on ${runningOn}`);
    return { ...res, runningOn };
  } finally {
    done.abort();
    for (const s of subs) s.unsubscribe();
  }
}

/** whereRunning asks where a resource is assigned and whether that worker runs it; NOT_FOUND if it is gone. */
async function whereRunning(client: GafferClient, name: string, left: () => number, seen: (id: string) => void): Promise<string | undefined> {
  const step = () => Math.min(1000, left());
  let r: Resource;
  try {
    r = (await client.call<{ resource: Resource }>(ClientSubject.get, { name }, step())).resource;
  } catch (err) {
    if (err instanceof GafferError && err.code === ErrorCode.NOT_FOUND) throw new NotFoundError(`${name} was deleted while we waited`);
    return undefined;
  }
  seen(r.id);
  // A sharded resource runs once every shard does (as its workers reported them started): its workers, listed.
  if (r.shards) return r.shards.every((x) => x.state === 'running') ? [...new Set(r.shards.map((x) => x.worker ?? '-'))].sort().join(',') : undefined;
  if (!r.worker) return undefined;
  try {
    const st = await client.call<WorkerStatusResult>(subjects.workerStatus(r.worker), {}, step());
    return st.running.includes(name) ? r.worker : undefined;
  } catch {
    return undefined; // the worker is starting, paused or gone; keep waiting
  }
}
