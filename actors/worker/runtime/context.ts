// The TaskContext a kind sees, and the checks on everything it hands back.
// Shared by the inline host (main thread) and thread-main (inside the task's
// thread), so a kind behaves the same under both; the thread host runs the
// same checks again on what arrives from the thread, since code in the
// thread can post to the host without going through this file.

import { createHash } from 'node:crypto';
import { MAX_STATE_BYTES, type InboxItem, type Json, type TaskContext, type TaskLog, type TaskStore } from '#kinds/api.js';
import { checkStoreKey } from '#protocol/task-state.js';
import type { TaskCallbacks, TaskStart } from './host.js';

export const MAX_DEPTH = 64;
/** Longest emit id, as UTF-8 bytes: room for any URL a server accepts (the crawl kind's ids are URLs). */
export const MAX_ID_BYTES = 8192;
/** Failure and log texts are cut to this many characters. */
export const MAX_TEXT = 2000;
/** A log line's fields are cut to this many JSON characters. */
const MAX_LOG_FIELDS = 8192;
/** Beyond this many bytes a value's exact size stops mattering: the walk gives up instead of copying more. */
const SCAN_CAP = 16 * MAX_STATE_BYTES;

class NotJson extends Error {}
class TooBig extends Error {}

/** truncate bounds a text that came from a kind before it goes to logs or records. */
export const truncate = (s: string, max = MAX_TEXT): string => (s.length > max ? `${s.slice(0, max)}…` : s);

/** errorText renders anything a kind may throw; it never throws itself (a Proxy or a null-prototype object can make String() throw). */
export function errorText(err: unknown): string {
  let s: string;
  try {
    s = String((err as { message?: unknown } | null | undefined)?.message ?? err);
  } catch {
    s = 'an error that cannot be printed';
  }
  return truncate(s || 'an error with no message');
}

function describe(v: unknown): string {
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'bigint') return 'a BigInt';
  if (typeof v === 'symbol') return 'a symbol';
  if (typeof v === 'number') return String(v);
  if (v === undefined) return 'undefined';
  try {
    const tag = Object.prototype.toString.call(v).slice(8, -1);
    if (tag !== 'Object') return `a ${tag}`;
    const name: unknown = (Object.getPrototypeOf(v) as { constructor?: { name?: unknown } } | null)?.constructor?.name;
    return typeof name === 'string' && name ? `an instance of ${name}` : 'an object that is not plain';
  } catch {
    return 'an exotic object';
  }
}

const jsonBytes = (v: string | number | boolean): number => Buffer.byteLength(JSON.stringify(v), 'utf8');

/**
 * toJson checks that `value` is plain JSON of at most MAX_STATE_BYTES and
 * returns a fresh copy of it, so what is checked is what is sent: a getter
 * or a later mutation by the kind cannot change it afterwards. Undefined
 * object properties are dropped (as JSON.stringify does); anything else that
 * JSON would change silently (NaN, holes, Date, Map, class instances) is
 * refused. Throws `${what} is not JSON: ...` or `${what} is N bytes; ...`.
 */
export function toJson(value: unknown, what: string): Json {
  const path: (string | number)[] = [];
  const ancestors = new Set<object>();
  let bytes = 0;
  const at = (): string => `$${path.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('')}`;
  const add = (n: number): void => {
    bytes += n;
    if (bytes > SCAN_CAP) throw new TooBig(`${what} is over ${SCAN_CAP} bytes; the limit is ${MAX_STATE_BYTES}`);
  };
  const walk = (v: unknown): Json => {
    if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') {
      if (typeof v === 'number' && !Number.isFinite(v)) throw new NotJson(`${describe(v)} at ${at()}`);
      // A string's length is a lower bound of its JSON bytes: a huge one is refused before it is escaped.
      if (typeof v === 'string') add(v.length + 2);
      add(v === null ? 4 : jsonBytes(v) - (typeof v === 'string' ? v.length + 2 : 0));
      return v;
    }
    if (typeof v !== 'object') throw new NotJson(`${describe(v)} at ${at()}`);
    if (ancestors.has(v)) throw new NotJson(`a cycle at ${at()}`);
    if (ancestors.size >= MAX_DEPTH) throw new NotJson(`nested deeper than ${MAX_DEPTH} at ${at()}`);
    ancestors.add(v);
    let out: Json;
    if (Array.isArray(v)) {
      const arr: Json[] = [];
      add(2 + Math.max(0, v.length - 1));
      for (let i = 0; i < v.length; i++) {
        path.push(i);
        if (!(i in v) || v[i] === undefined) throw new NotJson(`undefined at ${at()}`);
        arr.push(walk(v[i]));
        path.pop();
      }
      out = arr;
    } else {
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw new NotJson(`${describe(v)} at ${at()}`);
      const obj: { [k: string]: Json } = {};
      add(2);
      let first = true;
      for (const k of Object.keys(v)) {
        const item: unknown = (v as Record<string, unknown>)[k];
        if (item === undefined) continue;
        path.push(k);
        add(jsonBytes(k) + (first ? 1 : 2));
        first = false;
        // The leader's decoders refuse it (a "__proto__" key can replace a prototype), so it is refused here, where the task can be told.
        if (k === '__proto__') throw new NotJson(`a "__proto__" key at ${at()}`);
        obj[k] = walk(item);
        path.pop();
      }
      out = obj;
    }
    ancestors.delete(v);
    return out;
  };
  let copy: Json;
  try {
    copy = walk(value);
  } catch (err) {
    if (err instanceof NotJson) throw new Error(`${what} is not JSON: ${err.message}`);
    if (err instanceof TooBig) throw new Error(err.message);
    throw new Error(`${what} is not JSON: reading it threw: ${errorText(err)}`);
  }
  if (bytes > MAX_STATE_BYTES) throw new Error(`${what} is ${bytes} bytes; the limit is ${MAX_STATE_BYTES}`);
  return copy;
}

/** canonical is JSON with object keys sorted, so equal items hash equally whatever their key order. */
function canonical(v: Json): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(v[k] as Json)}`).join(',')}}`;
}

/** itemId is the default id of an emitted item: sha256 (hex) of its canonical JSON. */
export const itemId = (item: Json): string => createHash('sha256').update(canonical(item)).digest('hex');

/** checkId refuses an emit id that is not a non-empty string of at most MAX_ID_BYTES. */
export function checkId(id: unknown): string {
  if (typeof id !== 'string' || id === '') throw new Error(`emit id must be a non-empty string, got ${describe(id)}`);
  const n = Buffer.byteLength(id, 'utf8');
  if (n > MAX_ID_BYTES) throw new Error(`emit id is ${n} bytes; the limit is ${MAX_ID_BYTES}`);
  return id;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly string[] = ['debug', 'info', 'warn', 'error'];

const serializeError = (e: Error): Record<string, unknown> => ({ type: e.name, message: e.message, stack: e.stack });

/**
 * logFields turns a pino-style first argument into plain, bounded fields
 * that survive a structured clone: logs are best effort, so whatever cannot
 * be rendered becomes a note instead of an error.
 */
export function logFields(obj: unknown): Record<string, unknown> {
  if (obj === null || obj === undefined) return {};
  if (typeof obj !== 'object') return { value: truncate(String(obj)) };
  try {
    const s = JSON.stringify(obj instanceof Error ? { err: obj } : obj, (_k, v: unknown) =>
      v instanceof Error ? serializeError(v) : typeof v === 'bigint' ? String(v) : v,
    );
    if (s === undefined) return {};
    if (s.length > MAX_LOG_FIELDS) return { fieldsTruncated: s.slice(0, MAX_TEXT) };
    const parsed: unknown = JSON.parse(s);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : { value: parsed };
  } catch (err) {
    return { fieldsUnloggable: errorText(err) };
  }
}

/** logArgs maps pino's two call shapes, `(obj, msg)` and `(msg)`, onto TaskCallbacks.log's. */
export function logArgs(obj: unknown, msg: unknown): [Record<string, unknown>, string] {
  if (typeof obj === 'string' && msg === undefined) return [{}, truncate(obj)];
  return [logFields(obj), msg === undefined ? '' : truncate(String(msg))];
}

export interface ContextHandle {
  readonly ctx: TaskContext;
  /** close ends the attempt for the kind: later checkpoints and emits reject, progress and logs are dropped. */
  close(): void;
}

/** makeContext builds the TaskContext of one attempt; every effect goes through `cb` once checked. */
export function makeContext(start: TaskStart, cb: TaskCallbacks, signal: AbortSignal): ContextHandle {
  let closed = false;
  const ended = (what: string): Error => new Error(`${what} refused: this task attempt has ended`);
  const logger = (level: LogLevel) => (obj: object | string, msg?: string): void => {
    if (closed) return;
    const [fields, text] = logArgs(obj, msg);
    cb.log(level, fields, text);
  };
  const log: TaskLog = { debug: logger('debug'), info: logger('info'), warn: logger('warn'), error: logger('error') };
  const stored = (what: string): NonNullable<TaskCallbacks['store']> => {
    if (closed) throw ended(what);
    if (!cb.store) throw new Error(`${what} refused: this worker has no task store`);
    return cb.store;
  };
  const store: TaskStore = {
    async get(key: string): Promise<Json | undefined> {
      return stored('store.get').get(checkStoreKey(key));
    },
    async put(key: string, value: Json): Promise<void> {
      const s = stored('store.put');
      await s.put(checkStoreKey(key), toJson(value, 'stored value'));
    },
    async delete(key: string): Promise<void> {
      await stored('store.delete').delete(checkStoreKey(key));
    },
    async getShard(index: number, key: string): Promise<Json | undefined> {
      const s = stored('store.getShard');
      if (!s.getShard) throw new Error('store.getShard refused: this resource is not sharded (spec.shards)');
      return s.getShard(index, checkStoreKey(key));
    },
  };
  const ctx: TaskContext = {
    resource: { name: start.resource.name, id: start.resource.id },
    // Copies: a kind that mutates its spec must not change the worker's record of it.
    spec: structuredClone(start.spec),
    signal,
    log,
    attempt: start.attempt,
    ...(start.rerun ? { rerun: true } : {}),
    checkpointed: start.checkpointed === undefined ? undefined : structuredClone(start.checkpointed),
    async checkpoint(state: Json): Promise<void> {
      if (closed) throw ended('checkpoint');
      const copy = toJson(state, 'checkpoint');
      await cb.checkpoint(copy);
    },
    progress(value: Json): void {
      if (closed) return;
      cb.progress(toJson(value, 'progress'));
    },
    async emit(item: Json, opts?: { id?: string }): Promise<void> {
      if (closed) throw ended('emit');
      const copy = toJson(item, 'emitted item');
      const given = opts?.id;
      await cb.emit(copy, given === undefined ? itemId(copy) : checkId(given));
    },
    shard: { ...(start.shard ?? { index: 0, count: 1 }) },
    async send(index: number, item: Json, opts?: { id?: string }): Promise<void> {
      if (closed) throw ended('send');
      if (!cb.send) throw new Error('send refused: this resource is not sharded (spec.shards)');
      const copy = toJson(item, 'sent item');
      const given = opts?.id;
      await cb.send(index, copy, given === undefined ? itemId(copy) : checkId(given));
    },
    inbox: {
      [Symbol.asyncIterator](): AsyncIterator<InboxItem> {
        return {
          async next(): Promise<IteratorResult<InboxItem>> {
            if (closed || !cb.next) return { done: true, value: undefined };
            const got = await cb.next();
            if (!got) return { done: true, value: undefined };
            let acked = false;
            const ack = async (): Promise<void> => {
              if (acked) return;
              if (closed) throw ended('ack');
              await cb.ack!(got.ref);
              acked = true;
            };
            return { done: false, value: { item: got.item, redelivered: got.redelivered, ack } };
          },
        };
      },
    },
    store,
    busy(): () => void {
      if (closed || !cb.busy) return () => {};
      cb.busy(1);
      let released = false;
      return () => {
        if (released || closed) return;
        released = true;
        cb.busy!(-1);
      };
    },
  };
  return {
    ctx,
    close: () => {
      closed = true;
    },
  };
}
