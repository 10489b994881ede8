// The entry of a task thread (see thread-host.ts): imports the kind's
// module, runs one attempt with a context whose effects are posted to the
// host, and reports how run ended. With `discover: true` it only lists the
// module's kinds (kinds.ts), so untrusted top-level code never runs on the
// main thread.
//
// The message types below are the whole protocol between host and thread.
// Nothing here is trusted by the host: the kind shares this thread and can
// post anything on parentPort itself, so the host checks every message again.

import { parentPort, workerData } from 'node:worker_threads';
import type { Json, TaskKind } from '#kinds/api.js';
import type { TaskCallbacks, TaskStart } from './host.js';
import { errorText, makeContext, toJson, type ContextHandle, type LogLevel } from './context.js';

export type ThreadData =
  | { discover?: false; module: string; kind: string; start: TaskStart }
  | { discover: true; module: string };

/** Thread → host. seq pairs a checkpoint or emit with its ack or nack. */
export type FromThread =
  | { t: 'checkpoint'; seq: number; state: Json }
  | { t: 'emit'; seq: number; item: Json; id: string }
  /** A shard's queues: send an item, take the inbox's next one (answered with 'item' or 'end'), ack a held one. */
  | { t: 'send'; seq: number; index: number; item: Json; id: string }
  | { t: 'next'; seq: number }
  | { t: 'qack'; seq: number; ref: number }
  /** ctx.store; a get's value comes back on its ack. */
  | { t: 'store'; seq: number; op: StoreOp; key: string; value?: Json; shard?: number }
  /** ctx.busy: a busy mark taken (+1) or given back (-1). */
  | { t: 'busy'; delta: 1 | -1 }
  | { t: 'progress'; value: Json }
  | { t: 'log'; level: LogLevel; obj: Record<string, unknown>; msg: string }
  | { t: 'done'; result: Json | undefined }
  | { t: 'failed'; error: string }
  /** discover mode: the kind names, or why there are none (`why`). */
  | { t: 'kinds'; kinds: string[]; why?: string };

/** Host → thread. */
export type ToThread =
  | { t: 'stop' }
  /** A call done; a store get's value rides on it. */
  | { t: 'ack'; seq: number; value?: Json }
  | { t: 'nack'; seq: number; error: string }
  | { t: 'item'; seq: number; ref: number; item: Json; redelivered: boolean }
  | { t: 'end'; seq: number };

export type StoreOp = 'get' | 'put' | 'delete';

const port = parentPort;
if (!port) throw new Error('thread-main.js runs only as a worker thread (see thread-host.ts)');
const post = (m: FromThread): void => port.postMessage(m);

type Kinds = Record<string, unknown>;

async function importDefault(module: string): Promise<unknown> {
  let ns: { default?: unknown };
  try {
    ns = (await import(module)) as { default?: unknown };
  } catch (err) {
    throw new Error(`loading task module ${module} failed: ${errorText(err)}`);
  }
  return ns.default;
}

const isKind = (v: unknown): v is TaskKind =>
  v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { run?: unknown }).run === 'function';

async function discover(module: string): Promise<void> {
  try {
    const def = await importDefault(module);
    if (def === undefined) return post({ t: 'kinds', kinds: [], why: 'it has no default export' });
    if (def === null || typeof def !== 'object') {
      return post({ t: 'kinds', kinds: [], why: `its default export is ${def === null ? 'null' : typeof def}, not an object of kinds` });
    }
    const kinds = Object.keys(def).filter((k) => isKind((def as Kinds)[k]));
    post({ t: 'kinds', kinds, why: kinds.length ? undefined : 'no entry of its default export has a run function' });
  } catch (err) {
    post({ t: 'failed', error: errorText(err) });
  }
}

async function loadKind(module: string, name: string): Promise<TaskKind> {
  const def = await importDefault(module);
  // hasOwn: a kind named "constructor" or "__proto__" must not reach Object.prototype.
  const kind = def !== null && typeof def === 'object' && Object.hasOwn(def, name) ? (def as Kinds)[name] : undefined;
  if (!isKind(kind)) throw new Error(`task module ${module} has no kind "${name}" (an entry of its default export with a run function)`);
  return kind;
}

async function run(module: string, name: string, start: TaskStart): Promise<void> {
  const stop = new AbortController();
  type Answer = Exclude<ToThread, { t: 'stop' } | { t: 'nack' }>;
  const pending = new Map<number, { resolve: (a: Answer) => void; reject: (e: Error) => void }>();
  let seq = 0;
  port!.on('message', (m: ToThread) => {
    if (m.t === 'stop') return stop.abort(new Error('task stopping'));
    const p = pending.get(m.seq);
    if (!p) return;
    pending.delete(m.seq);
    if (m.t === 'nack') p.reject(new Error(m.error));
    else p.resolve(m);
  });
  type Call =
    | { t: 'checkpoint'; state: Json }
    | { t: 'emit'; item: Json; id: string }
    | { t: 'store'; op: StoreOp; key: string; value?: Json; shard?: number }
    | { t: 'send'; index: number; item: Json; id: string }
    | { t: 'next' }
    | { t: 'qack'; ref: number };
  const call = (m: Call): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const s = ++seq;
      pending.set(s, { resolve, reject });
      post({ ...m, seq: s });
    });
  const done = (p: Promise<unknown>): Promise<void> => p.then(() => undefined);
  const bridge: TaskCallbacks = {
    checkpoint: (state) => done(call({ t: 'checkpoint', state })),
    emit: (item, id) => done(call({ t: 'emit', item, id })),
    store: {
      get: (key) => call({ t: 'store', op: 'get', key }).then((a) => (a.t === 'ack' ? a.value : undefined)),
      put: (key, value) => done(call({ t: 'store', op: 'put', key, value })),
      delete: (key) => done(call({ t: 'store', op: 'delete', key })),
      ...(start.shard
        ? { getShard: (shard: number, key: string) => call({ t: 'store', op: 'get', key, shard }).then((a) => (a.t === 'ack' ? a.value : undefined)) }
        : {}),
    },
    progress: (value) => post({ t: 'progress', value }),
    log: (level, obj, msg) => post({ t: 'log', level, obj, msg }),
    ...(start.shard
      ? {
          send: (index: number, item: Json, id: string) => done(call({ t: 'send', index, item, id })),
          next: () => call({ t: 'next' }).then((a) => (a.t === 'item' ? { ref: a.ref, item: a.item, redelivered: a.redelivered === true } : undefined)),
          ack: (ref: number) => done(call({ t: 'qack', ref })),
          busy: (delta: 1 | -1) => post({ t: 'busy', delta }),
        }
      : {}),
  };
  let handle: ContextHandle | undefined;
  let end: FromThread;
  try {
    const kind = await loadKind(module, name);
    handle = makeContext(start, bridge, stop.signal);
    const result: unknown = await kind.run(handle.ctx);
    end = { t: 'done', result: result === undefined ? undefined : toJson(result, 'result') };
  } catch (err) {
    end = { t: 'failed', error: errorText(err) };
  }
  handle?.close();
  post(end);
}

const data = workerData as ThreadData;
if (data.discover) void discover(data.module);
else void run(data.module, data.kind, data.start);
