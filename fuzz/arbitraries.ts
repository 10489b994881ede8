// The fuzzer's generators. A case is plain data: a target, the refs that pick
// a worker, master or discovery subject, how it is sent (request, publish, or
// with a reply subject that is not an inbox), a body description and headers.
// Bodies that depend on the live cluster (task reports for real attempts,
// assign events) or that are too big to generate byte by byte (huge and deep
// bodies) are descriptions; materialize() turns a case into bytes, headers
// and what the judge may expect of the answer, against the live cluster.
//
// Every body carries an intent: `valid` (a correct request for its subject:
// anything but BAD_REQUEST), `invalid` (certainly BAD_REQUEST) or `any`.

import fc from 'fast-check';
import { Encoder, ExtData, encode as mpEncode } from '@msgpack/msgpack';
import { headers as natsHeaders, type MsgHdrs } from 'nats';
import { ClientSubject, Header, WorkerSubject, type RequestSubject } from '#protocol/subjects.js';
import {
  ODD_TOKENS, REQUEST_SUBJECTS, isRequestTarget, resolve, TARGETS,
  type Live, type MasterRef, type Resolved, type SrvRef, type TargetId, type WorkerRef,
} from './targets.js';

// --- limits the wire contract states (README), restated for the oracle ------

export const MAX_REQUEST = 256 * 1024;
/** nats-server's max_payload in the dev cluster (headers included). */
export const MAX_PAYLOAD = 1024 * 1024;
export const MAX_STATE = 64 * 1024;
export const MAX_SPEC = 64 * 1024;
export const REQUEST_ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export type Enc = 'json' | 'msgpack';
export type Intent = 'valid' | 'invalid' | 'any';
export type Mode = 'request' | 'publish' | 'foreign';

// --- case descriptions -------------------------------------------------------

type HugeShape = 'pad-valid' | 'spec-blob' | 'garbage' | 'bin' | 'text';
type DeepShape = 'array' | 'object' | 'spec';
type PayloadSpec =
  | { k: 'none' }
  | { k: 'small'; value: unknown }
  | { k: 'deep'; depth: number; shape: 'array' | 'object' }
  | { k: 'proto' }
  | { k: 'big'; bytes: number };
type ResRef = { k: 'assigned'; i: number } | { k: 'known'; i: number } | { k: 'name'; name: string };
interface ItemSpec {
  type: string;
  res: ResRef;
  id: 'real' | 'wrong' | 'empty' | 'long';
  attempt: 'real' | 'next' | 'far' | 'prev' | 'zero' | 'frac' | 'str';
  seq: number;
  payload: PayloadSpec;
}
interface ReportSpec {
  who: 'owner' | 'other-live' | 'unknown' | 'odd';
  epoch: 'real' | 'random' | 'zero' | 'bad' | 'other-worker' | 'number';
  items: ItemSpec[];
  /** Repeat the first item this many times (big batches). */
  repeat: number;
  extraField: boolean;
}
interface AssignSpec {
  shape: 'old' | 'missing' | 'wrong-types' | 'not-object';
  type: string;
  res: ResRef;
  epoch: 'real' | 'random';
  revision: number;
  attempt: number;
  hold: boolean;
}
interface AckSpec {
  ids: unknown[];
  errors: unknown;
  extra: boolean;
}

export type Body =
  | { k: 'value'; enc: Enc; value: unknown; intent: Intent; note: string }
  | { k: 'raw'; bytes: Uint8Array; enc: Enc; intent: Intent; note: string }
  | { k: 'empty' }
  | { k: 'huge'; shape: HugeShape; size: number; enc: Enc; seed: number; name: string }
  | { k: 'deep'; shape: DeepShape; depth: number; enc: Enc }
  | { k: 'report'; enc: Enc; report: ReportSpec }
  | { k: 'assign'; assign: AssignSpec }
  | { k: 'ack'; ack: AckSpec };

export type HeaderSpec =
  | { key: string; value: string }
  | { key: string; huge: { ch: string; n: number } }
  | { key: typeof Header.requestId; id: 'unique' | 'reused'; n: number };

/** How the Content-Type header relates to the body's encoding. */
export type CtMode = 'match' | 'none' | 'mismatch' | 'garbage' | 'twice' | 'variant';

export interface FuzzCase {
  target: TargetId;
  worker: WorkerRef;
  master: MasterRef;
  srv: SrvRef;
  /** master.leader: the subject forged into Gaffer-Subject (absent: no such header). */
  forged?: string | undefined;
  mode: Mode;
  ct: CtMode;
  ctGarbage: string;
  body: Body;
  headers: HeaderSpec[];
  /** Cases sent at the same time as this one. */
  burst?: FuzzCase[];
}

// --- small arbitraries -------------------------------------------------------

const w = <T>(weight: number, arbitrary: fc.Arbitrary<T>): fc.WeightedArbitrary<T> => ({ weight, arbitrary });

/** Valid names: a small pool (so adds, gets and deletes meet), boundaries, and any name the contract allows. */
const POOL = ['a', 'a.b', 'a..b', 'a.', 'a-', 'fz-1', 'fz_2', 'Z9', '0', 'zz.yy.xx', 'n'.repeat(128), 'crawl-1', 'kind-x', 'prefs'] as const;
export const validName = fc.oneof(w(7, fc.constantFrom(...POOL)), w(3, fc.stringMatching(NAME_RE)));
/** Invalid names: wildcards and subject syntax, unicode, spaces, over-long, not strings. */
const BAD_NAMES = ['', '*', '>', '..', 'a.>', '.a', '-a', '_a', 'a b', 'a/b', 'a*', 'n'.repeat(129), 'é', '日本語', 'a\u0000b', '😀', ' a', 'a\t'];
const invalidName: fc.Arbitrary<unknown> = fc.oneof(
  w(6, fc.constantFrom(...BAD_NAMES)),
  w(3, fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((s) => !NAME_RE.test(s))),
  w(1, fc.constantFrom(null, 5, true, ['a'], { name: 'a' })),
);

const LIVE_WORKERS = ['w1', 'w2'];
const validWorkerInBody = fc.oneof(w(6, fc.constantFrom(...LIVE_WORKERS)), w(1, fc.constantFrom('w9', 'W1', 'w1_', 'x'.repeat(64))));

/** Object keys, including those JavaScript treats specially. */
const KEYS = ['a', 'b', 'x', 'kind', 'spec', 'name', '__proto__', 'constructor', 'toString', 'hasOwnProperty', '', ' ', 'é', '$', 'a.b'];
const key = fc.oneof(w(3, fc.constantFrom(...KEYS)), w(1, fc.string({ maxLength: 8 })));

/** build makes a plain object with own properties, even `__proto__` (as JSON.parse does). */
function build(entries: Array<[string, unknown]>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}

/** hasProto: some object in v has an own `__proto__` key (which the product refuses in either encoding). */
export function hasProto(v: unknown): boolean {
  const stack: unknown[] = [v];
  while (stack.length > 0) {
    const x = stack.pop();
    if (x === null || typeof x !== 'object' || x instanceof Uint8Array || x instanceof Date || x instanceof ExtData) continue;
    if (!Array.isArray(x) && Object.prototype.hasOwnProperty.call(x, '__proto__')) return true;
    for (const y of Object.values(x)) stack.push(y);
  }
  return false;
}

/** JSON values with odd keys (and `__proto__` as an own key). */
const jsonish: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', maxDepth: 5 },
    fc.constantFrom(null, true, false, 0, -0, 1, -1, 1.5, 1e308, -1e308, 2 ** 53, 2 ** 53 + 2, '', 'x', '\u0000', '😀', '\ud800'),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ unit: 'grapheme', maxLength: 12 }),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.array(fc.tuple(key, tie('v')), { maxLength: 4 }).map(build),
  ),
})).v;

/** Values only msgpack can carry: binary, extensions, timestamps, NaN, infinities, big integers. */
const msgpackOnly: fc.Arbitrary<unknown> = fc.oneof(
  fc.uint8Array({ maxLength: 16 }),
  fc.tuple(fc.integer({ min: 0, max: 127 }), fc.uint8Array({ maxLength: 8 })).map(([t, d]) => new ExtData(t, d)),
  fc.date({ noInvalidDate: true }),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 64, -(2 ** 63)),
);

// --- valid and invalid requests per subject ---------------------------------

const restartPolicy = fc
  .record(
    {
      attempts: fc.integer({ min: 1, max: 5 }),
      delayMs: fc.integer({ min: 0, max: 2000 }),
      reschedule: fc.boolean(),
    },
    { requiredKeys: [] },
  )
  .chain((r) => fc.option(fc.integer({ min: r.delayMs ?? 1000, max: 30000 }), { nil: undefined }).map((m) => (m === undefined ? r : { ...r, maxDelayMs: m })));

const rule = fc.oneof(
  fc.record({ key: fc.constantFrom('zone', 'gpu', 'a.b'), op: fc.constantFrom('in', 'notIn'), values: fc.array(fc.constantFrom('x', 'y', 'eu-1'), { minLength: 1, maxLength: 3 }) }),
  fc.record({ key: fc.constantFrom('zone', 'gpu'), op: fc.constantFrom('exists', 'notExists') }),
);

/** Valid specs: noop by default; kinds nobody runs (pending); crawl that fails or fetches nothing reachable; rules and restart policies; odd extra keys. */
const sometimes = <T>(a: fc.Arbitrary<T>, freq = 5): fc.Arbitrary<T | undefined> => fc.option(a, { freq, nil: undefined });
const validSpec: fc.Arbitrary<Record<string, unknown>> = fc
  .record({
    kind: sometimes(fc.constantFrom('noop', 'noop', 'noop', 'noop', 'nosuch-kind', 'crawl', 'A_b-9'), 2),
    restart: sometimes(restartPolicy, 4),
    constraints: sometimes(fc.array(rule, { maxLength: 3 }), 8),
    prefer: sometimes(fc.array(rule, { maxLength: 3 }), 6),
    rebalance: sometimes(fc.boolean(), 6),
    extra: sometimes(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'x', 'constructor', 'é', '', 'seeds'), jsonish), { maxLength: 3 }), 3),
    crawlTo: fc.boolean(),
  })
  .map(({ extra, crawlTo, ...s }) => {
    const spec = build([...Object.entries(s).filter(([, v]) => v !== undefined), ...(extra ?? [])]);
    // A crawl with seeds only ever reaches a closed loopback port.
    if (spec.kind === 'crawl' && crawlTo) {
      spec.seeds = ['http://127.0.0.1:9/'];
      spec.maxPages = 2;
      spec.timeoutMs = 500;
    } else if ('seeds' in spec) delete spec.seeds;
    return spec;
  });

const invalidSpec: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, [], 'noop', 5, true),
  fc.constantFrom(
    { kind: '' }, { kind: 'a b' }, { kind: 5 }, { kind: 'x'.repeat(65) }, { kind: 'a.b' },
    { restart: { attempts: 0 } }, { restart: { delayMs: -1 } }, { restart: { delayMs: 10, maxDelayMs: 5 } }, { restart: { foo: 1 } }, { restart: [] },
    { restart: { attempts: 1.5 } }, { restart: { reschedule: 'yes' } },
    { constraints: {} }, { constraints: [{ key: 'k', op: 'near' }] }, { constraints: [{ key: 'k', op: 'in' }] },
    { constraints: [{ key: 'k', op: 'exists', values: ['x'] }] }, { constraints: Array.from({ length: 33 }, () => ({ key: 'k', op: 'exists' })) },
    { prefer: [{ key: '', op: 'exists' }] }, { rebalance: 'no' },
  ),
  fc.integer({ min: 17, max: 40 }).map((d) => ({ deep: nest(d, 'object') })),
  fc.constant({ blob: 'x'.repeat(64 * 1024 + 1) }),
);

function nest(depth: number, shape: 'array' | 'object'): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = shape === 'array' ? [v] : { a: v };
  return v;
}

const listReq = fc.record(
  { after: validName, limit: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5000 })) },
  { requiredKeys: [] },
);

/** validRequest: a request its subject must accept (anything but BAD_REQUEST). */
function validRequest(subject: RequestSubject): fc.Arbitrary<unknown> {
  switch (subject) {
    case ClientSubject.add:
      return fc
        .record({ name: validName, spec: validSpec, dryRun: fc.boolean() }, { requiredKeys: ['name'] })
        .map((r) => (r.dryRun === false ? { name: r.name, ...(r.spec ? { spec: r.spec } : {}) } : r));
    case ClientSubject.delete:
    case ClientSubject.get:
    case ClientSubject.restart:
    case ClientSubject.explain:
      return validName.map((name) => ({ name }));
    case ClientSubject.list:
      return listReq;
    case ClientSubject.status:
      return fc.constant({});
    case ClientSubject.cordon:
    case ClientSubject.uncordon:
      return validWorkerInBody.map((worker) => ({ worker }));
    case ClientSubject.drain:
      return fc.record(
        {
          worker: validWorkerInBody,
          deadlineMs: fc.oneof(w(3, fc.integer({ min: 30_000, max: 3_600_000 })), w(1, fc.integer({ min: 1, max: 100 }))),
        },
        { requiredKeys: ['worker'] },
      );
    case ClientSubject.apply:
      return fc.record(
        { resources: fc.uniqueArray(fc.record({ name: validName, spec: validSpec }, { requiredKeys: ['name'] }), { maxLength: 5, selector: (r) => r.name }), dryRun: fc.boolean() },
        { requiredKeys: ['resources'] },
      );
    case WorkerSubject.report:
      // Reports are built against the live cluster: see reportBody.
      return fc.constant({});
    case ClientSubject.schedulePause:
    case ClientSubject.scheduleResume:
      return fc.record({ name: validName, note: fc.string({ maxLength: 20 }) }, { requiredKeys: ['name'] });
    case ClientSubject.scheduleTrigger:
      return validName.map((name) => ({ name }));
    case ClientSubject.scheduleBackfill:
      return fc.tuple(validName, fc.integer({ min: 0, max: 2 ** 40 })).map(([name, from]) => ({ name, from, to: from + 60_000 }));
  }
}

/** invalidRequest: a request its subject must refuse with BAD_REQUEST. */
function invalidRequest(subject: RequestSubject): fc.Arbitrary<unknown> {
  const unknownField = fc.tuple(validRequest(subject), fc.constantFrom('extra', 'Name', 'NAME', '__proto__', 'constructor', '')).map(([r, k]) =>
    build([...Object.entries(r as object), [k, 1]]),
  );
  const notObject = fc.constantFrom(null, [], [{}], 'x', 5, true);
  switch (subject) {
    case ClientSubject.add:
      return fc.oneof(
        notObject, unknownField,
        invalidName.map((name) => ({ name })),
        fc.constant({}),
        fc.tuple(validName, invalidSpec).map(([name, spec]) => ({ name, spec })),
        fc.tuple(validName, fc.constantFrom('yes', 1, null)).map(([name, dryRun]) => ({ name, dryRun })),
      );
    case ClientSubject.delete:
    case ClientSubject.get:
    case ClientSubject.restart:
    case ClientSubject.explain:
    case ClientSubject.schedulePause:
    case ClientSubject.scheduleResume:
    case ClientSubject.scheduleTrigger:
    case ClientSubject.scheduleBackfill:
      return fc.oneof(notObject, unknownField, invalidName.map((name) => ({ name })), fc.constant({}));
    case ClientSubject.list:
      return fc.oneof(
        notObject, unknownField,
        fc.constantFrom(0, 5001, 1.5, -1, '3', null, 1e300).map((limit) => ({ limit })),
        invalidName.map((after) => ({ after })),
      );
    case ClientSubject.status:
      return fc.oneof(notObject, fc.constantFrom({ a: 1 }, { name: 'a' }, build([['__proto__', {}]])));
    case ClientSubject.cordon:
    case ClientSubject.uncordon:
      return fc.oneof(notObject, unknownField, fc.constantFrom('', 'a.b', '*', '>', 'x'.repeat(65), 5, null).map((worker) => ({ worker })), fc.constant({}));
    case ClientSubject.drain:
      return fc.oneof(
        notObject, unknownField,
        fc.constantFrom(0, -1, 1.5, 3_600_001, '100', null).map((deadlineMs) => ({ worker: 'w1', deadlineMs })),
        fc.constantFrom('', '*', 'a.b').map((worker) => ({ worker })),
      );
    case ClientSubject.apply:
      return fc.oneof(
        notObject, unknownField,
        fc.constantFrom({}, { resources: {} }, { resources: [], prune: {} }, { resources: [], prune: { prefix: '' } }, { resources: [], dryRun: 1 }),
        fc.constant({ resources: Array.from({ length: 1001 }, (_, i) => ({ name: `n${i}` })) }),
      );
    case WorkerSubject.report:
      return fc.oneof(
        notObject,
        fc.constantFrom(
          {}, { worker: 'w1' }, { worker: 'w1', epoch: '1' }, { worker: 'w1', epoch: '1', reports: [] },
          { worker: 'w1', epoch: 'abc', reports: [{ type: 'started', name: 'a', id: 'x', attempt: 1 }] },
          { worker: 'a.b', epoch: '1', reports: [{ type: 'started', name: 'a', id: 'x', attempt: 1 }] },
          { worker: 'w1', epoch: '1', reports: [{ type: 'bogus', name: 'a', id: 'x', attempt: 1 }] },
          { worker: 'w1', epoch: '1', reports: [{ type: 'started', name: 'a', id: 'x', attempt: 0 }] },
          { worker: 'w1', epoch: '1', reports: [{ type: 'started', name: '*', id: 'x', attempt: 1 }] },
          { worker: 'w1', epoch: '1', reports: [null] },
          { worker: 'w1', epoch: '1', reports: 'x' },
          { worker: 'w1', epoch: '1'.repeat(21), reports: [{ type: 'started', name: 'a', id: 'x', attempt: 1 }] },
        ),
      );
  }
}

// --- bodies ------------------------------------------------------------------

const enc = fc.constantFrom<Enc>('json', 'json', 'msgpack');

const malformedJson = fc.oneof(
  fc.constantFrom('{', '{"name":', '{"name":"a",}', "{'name':'a'}", '{"name":"a"}}', 'nul', 'NaN', '[1,]', '{"name":"a"}\u0000', '\ufeff{}', '{"a":1e99999}', '"\\ud800"', '{"name":"\\u00"}'),
  fc.string({ unit: 'binary', maxLength: 40 }),
);

const rawBody: fc.Arbitrary<Body> = fc.oneof(
  malformedJson.map((s): Body => ({ k: 'raw', bytes: new TextEncoder().encode(s), enc: 'json', intent: 'any', note: 'malformed or odd JSON text' })),
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes): Body => ({ k: 'raw', bytes, enc: 'msgpack', intent: 'any', note: 'random bytes' })),
  // Invalid UTF-8 is never JSON.
  fc.uint8Array({ minLength: 0, maxLength: 16 }).map((b): Body => ({ k: 'raw', bytes: Uint8Array.from([0x7b, 0xff, ...b]), enc: 'json', intent: 'invalid', note: 'invalid UTF-8' })),
  // Truncated msgpack, and msgpack with bytes after the value.
  fc.tuple(fc.constantFrom<Record<string, unknown>>({ name: 'a' }, { name: 'a', spec: { kind: 'noop' } }, {}), fc.boolean()).map(([v, cut]): Body => {
    const b = mpEncode(v);
    const truncate = cut && b.length > 1;
    return { k: 'raw', bytes: truncate ? b.slice(0, b.length - 1) : Uint8Array.from([...b, 0xc0]), enc: 'msgpack', intent: 'invalid', note: truncate ? 'truncated msgpack' : 'msgpack with trailing bytes' };
  }),
  // Map keys msgpack allows but JavaScript objects do not: non-string keys, __proto__.
  fc.constantFrom(
    Uint8Array.from([0x81, 0x01, 0xa1, 0x61]),
    Uint8Array.from([0x81, 0x91, 0x01, 0xa1, 0x61]),
    Uint8Array.from([0x81, 0xa9, ...new TextEncoder().encode('__proto__'), 0x80]),
    Uint8Array.from([0xdf, 0xff, 0xff, 0xff, 0xff]),
    Uint8Array.from([0xdb, 0x7f, 0xff, 0xff, 0xff]),
  ).map((bytes): Body => ({ k: 'raw', bytes, enc: 'msgpack', intent: 'any', note: 'odd msgpack' })),
);

const valueBody = (value: fc.Arbitrary<unknown>, intent: Intent, note: string): fc.Arbitrary<Body> =>
  fc.tuple(value, enc).map(([v, e]): Body => ({ k: 'value', enc: e, value: v, intent, note }));

const msgpackValueBody: fc.Arbitrary<Body> = fc
  .oneof(msgpackOnly, fc.array(fc.tuple(fc.constantFrom('name', 'spec', 'worker', 'limit', 'reports', 'a'), fc.oneof(msgpackOnly, jsonish)), { maxLength: 3 }).map(build))
  .map((value): Body => ({ k: 'value', enc: 'msgpack', value, intent: 'any', note: 'msgpack-only values' }));

const hugeBody: fc.Arbitrary<Body> = fc.record({
  k: fc.constant('huge' as const),
  shape: fc.constantFrom<HugeShape>('pad-valid', 'pad-valid', 'spec-blob', 'garbage', 'bin', 'text'),
  size: fc.oneof(
    fc.constantFrom(MAX_REQUEST - 1, MAX_REQUEST, MAX_REQUEST + 1, MAX_PAYLOAD, MAX_PAYLOAD - 1),
    fc.integer({ min: 64 * 1024, max: MAX_PAYLOAD }),
  ),
  enc,
  seed: fc.integer(),
  name: validName,
});

const deepBody: fc.Arbitrary<Body> = fc.record({
  k: fc.constant('deep' as const),
  shape: fc.constantFrom<DeepShape>('array', 'object', 'spec', 'spec'),
  depth: fc.oneof(fc.integer({ min: 14, max: 18 }), fc.constantFrom(99, 100, 101, 1000, 10_000, 100_000)),
  enc,
});

/** bodyFor: what is sent to a request subject (a client subject or task.report). */
export function bodyFor(subject: RequestSubject): fc.Arbitrary<Body> {
  const other = fc.constantFrom(...REQUEST_SUBJECTS).chain((s) => valueBody(validRequest(s), 'any', `valid for ${s}`));
  const valid = subject === WorkerSubject.report ? reportBody : valueBody(validRequest(subject), 'valid', 'valid');
  return fc.oneof(
    w(40, valid),
    w(14, valueBody(invalidRequest(subject), 'invalid', 'invalid')),
    w(6, valueBody(jsonish, 'any', 'random JSON value')),
    w(4, msgpackValueBody),
    w(8, rawBody),
    w(6, hugeBody),
    w(6, deepBody),
    w(3, fc.constant<Body>({ k: 'empty' })),
    w(5, other),
  );
}

const payload: fc.Arbitrary<PayloadSpec> = fc.oneof(
  w(6, jsonish.map((value): PayloadSpec => ({ k: 'small', value }))),
  w(2, fc.record({ k: fc.constant('deep' as const), depth: fc.constantFrom(50, 63, 64, 65, 99, 100, 101, 150, 1000, 5000, 100_000), shape: fc.constantFrom<'array' | 'object'>('array', 'object') })),
  w(1, fc.constant<PayloadSpec>({ k: 'proto' })),
  w(1, fc.constantFrom(MAX_STATE - 100, MAX_STATE + 1).map((bytes): PayloadSpec => ({ k: 'big', bytes }))),
  w(1, fc.constant<PayloadSpec>({ k: 'none' })),
);

const resRef: fc.Arbitrary<ResRef> = fc.oneof(
  w(6, fc.nat().map((i): ResRef => ({ k: 'assigned', i }))),
  w(2, fc.nat().map((i): ResRef => ({ k: 'known', i }))),
  w(2, validName.map((name): ResRef => ({ k: 'name', name }))),
);

const item: fc.Arbitrary<ItemSpec> = fc.record({
  type: fc.oneof(w(12, fc.constantFrom('started', 'progress', 'checkpoint', 'completed', 'failed', 'stopped')), w(1, fc.constantFrom('bogus', '', 'STARTED'))),
  res: resRef,
  id: fc.oneof(w(8, fc.constant('real' as const)), w(2, fc.constant('wrong' as const)), w(1, fc.constantFrom('empty' as const, 'long' as const))),
  attempt: fc.oneof(w(8, fc.constant('real' as const)), w(3, fc.constantFrom('next' as const, 'far' as const, 'prev' as const)), w(1, fc.constantFrom('zero' as const, 'frac' as const, 'str' as const))),
  seq: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 ** 40 })),
  payload,
});

const reportBody: fc.Arbitrary<Body> = fc
  .record({
    who: fc.oneof(w(7, fc.constant('owner' as const)), w(3, fc.constantFrom('other-live' as const, 'unknown' as const, 'odd' as const))),
    epoch: fc.oneof(w(8, fc.constant('real' as const)), w(3, fc.constantFrom('random' as const, 'zero' as const, 'other-worker' as const)), w(1, fc.constantFrom('bad' as const, 'number' as const))),
    items: fc.array(item, { minLength: 1, maxLength: 4 }),
    repeat: fc.oneof(w(9, fc.constant(0)), w(1, fc.constantFrom(10, 999, 1000))),
    extraField: fc.oneof(w(19, fc.constant(false)), w(1, fc.constant(true))),
  })
  .chain((report) => enc.map((e): Body => ({ k: 'report', enc: e, report })));

const assignBody: fc.Arbitrary<Body> = fc
  .record({
    shape: fc.constantFrom<AssignSpec['shape']>('old', 'old', 'old', 'missing', 'wrong-types', 'not-object'),
    type: fc.constantFrom('put', 'delete', 'put', 'PUT', 'bogus'),
    res: resRef,
    epoch: fc.constantFrom<'real' | 'random'>('real', 'random'),
    // At or below any snapshot a live worker has read: old news, never applied.
    revision: fc.oneof(fc.integer({ min: -1000, max: 1 }), fc.constantFrom(-Number.MAX_VALUE, Number.MIN_VALUE, 0)),
    attempt: fc.integer({ min: 0, max: 10 }),
    hold: fc.boolean(),
  })
  .map((assign): Body => ({ k: 'assign', assign }));

const ackBody: fc.Arbitrary<Body> = fc
  .record({
    ids: fc.array(fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom(null, 1, {}, [], 'm1.00000000.1')), { maxLength: 5 }),
    errors: fc.oneof(fc.constant(undefined), fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }), fc.constantFrom(null, 'x', {}, 5)),
    extra: fc.boolean(),
  })
  .map((ack): Body => ({ k: 'ack', ack }));

const anyBody: fc.Arbitrary<Body> = fc.oneof(
  w(4, valueBody(jsonish, 'any', 'random JSON value')),
  w(2, msgpackValueBody),
  w(3, rawBody),
  w(1, hugeBody),
  w(1, deepBody),
  w(1, fc.constant<Body>({ k: 'empty' })),
);

// --- headers -----------------------------------------------------------------

/** Header values: no CR or LF (the NATS client refuses them before anything is sent). */
const oddValue = fc.oneof(
  fc.constantFrom('', ' ', 'a b', 'a b c', '*', '>', 'a.b', 'a.>', '..', 'é', '日本', '😀', '\t', 'x\ty', 'm1', 'm2', 'm3', 'm-nosuch', '_INBOX.x', 'master.ack.m1', '\u0000'),
  fc.string({ unit: 'grapheme', maxLength: 16 }).map((s) => s.replace(/[\r\n]/g, '')),
);

const requestIdHeader: fc.Arbitrary<HeaderSpec[]> = fc.oneof(
  w(10, fc.constant<HeaderSpec[]>([])),
  w(12, fc.nat().map((n): HeaderSpec[] => [{ key: Header.requestId, id: 'unique', n }])),
  w(1, fc.integer({ min: 0, max: 2 }).map((n): HeaderSpec[] => [{ key: Header.requestId, id: 'reused', n }])),
  w(1, fc.constant<HeaderSpec[]>([{ key: Header.requestId, value: '' }])),
  w(1, fc.constantFrom(128, 129, 4096, 64 * 1024).map((n): HeaderSpec[] => [{ key: Header.requestId, huge: { ch: 'r', n } }])),
  w(2, oddValue.map((value): HeaderSpec[] => [{ key: Header.requestId, value }])),
  // Repeated: the first value is the one that counts.
  w(2, fc.tuple(fc.nat(), oddValue).map(([n, value]): HeaderSpec[] => [{ key: Header.requestId, id: 'unique', n }, { key: Header.requestId, value }])),
  w(1, fc.tuple(oddValue, fc.nat()).map(([value, n]): HeaderSpec[] => [{ key: Header.requestId, value }, { key: Header.requestId, id: 'unique', n }])),
);

const otherHeaders: fc.Arbitrary<HeaderSpec[]> = fc.option(fc.array(
  fc.oneof(
    w(3, oddValue.map((value): HeaderSpec => ({ key: Header.origin, value }))),
    w(1, fc.constantFrom(1000, 64 * 1024).map((n): HeaderSpec => ({ key: Header.origin, huge: { ch: 'o', n } }))),
    w(1, fc.constantFrom('1', '0', 'yes', '').map((value): HeaderSpec => ({ key: Header.ping, value }))),
    w(1, oddValue.map((value): HeaderSpec => ({ key: Header.subject, value }))),
    w(1, fc.tuple(fc.constantFrom('content-type', 'gaffer-request-id', 'X-Fuzz', 'Nats-Msg-Id'), oddValue).map(([k, value]): HeaderSpec => ({ key: k, value }))),
  ),
  { minLength: 1, maxLength: 3 },
), { freq: 2, nil: [] });

// --- whole cases -------------------------------------------------------------

const workerRef: fc.Arbitrary<WorkerRef> = fc.oneof(
  w(8, fc.nat().map((i): WorkerRef => ({ k: 'live', i }))),
  w(1, fc.constant<WorkerRef>({ k: 'unknown' })),
  w(1, fc.constantFrom(...ODD_TOKENS).map((token): WorkerRef => ({ k: 'odd', token }))),
);
const masterRef: fc.Arbitrary<MasterRef> = fc.oneof(
  w(8, fc.constant<MasterRef>({ k: 'leader' })),
  w(2, fc.nat().map((i): MasterRef => ({ k: 'follower', i }))),
  w(1, fc.constant<MasterRef>({ k: 'unknown' })),
  w(1, fc.constantFrom(...ODD_TOKENS).map((token): MasterRef => ({ k: 'odd', token }))),
);
const srvRef: fc.Arbitrary<SrvRef> = fc.record({
  verb: fc.constantFrom('PING', 'INFO', 'STATS'),
  scope: fc.oneof(w(6, fc.constantFrom('all' as const, 'service' as const, 'instance' as const)), w(1, fc.constantFrom('other-service' as const, 'bad-instance' as const, 'upper-case' as const))),
  i: fc.nat(),
});

/** Weights of the targets: the client subjects and reports carry most of the cases. */
const TARGET_WEIGHTS: Record<TargetId, number> = {
  'resource.add': 14, 'resource.delete': 8, 'resource.get': 6, 'resource.list': 5, 'resource.restart': 4, 'resource.explain': 4,
  'cluster.status': 4, 'worker.cordon': 3, 'worker.uncordon': 3, 'worker.drain': 3, 'resource.apply': 4, 'task.report': 12,
  $SRV: 4, 'worker.assign': 6, 'worker.status': 4, 'master.leader': 12, 'master.ack': 4,
};

const forgedSubject = fc.oneof(
  w(9, fc.constantFrom(...REQUEST_SUBJECTS)),
  w(1, fc.constantFrom('', 'resource.nope', 'master.leader.m1', '>', '*', 'resource.*', 'RESOURCE.ADD', ' resource.add')),
);

function bodyForTarget(target: TargetId, forged: string | undefined): fc.Arbitrary<Body> {
  if (isRequestTarget(target)) return bodyFor(target);
  switch (target) {
    case 'master.leader':
      return forged !== undefined && (REQUEST_SUBJECTS as readonly string[]).includes(forged.trim()) ? bodyFor(forged.trim() as RequestSubject) : anyBody;
    case 'worker.assign':
      return fc.oneof(w(3, assignBody), w(2, anyBody));
    case 'master.ack':
      return fc.oneof(w(3, ackBody), w(2, anyBody));
    default:
      return anyBody;
  }
}

const singleCase: fc.Arbitrary<FuzzCase> = fc
  .oneof(...TARGETS.map((t) => w(TARGET_WEIGHTS[t], fc.constant(t))))
  .chain((target) =>
    fc
      .option(forgedSubject, { freq: 12, nil: undefined })
      .map((forged) => ({ target, forged: target === 'master.leader' ? forged : undefined })),
  )
  .chain(({ target, forged }) =>
    fc.record({
      target: fc.constant(target),
      forged: fc.constant(forged),
      worker: workerRef,
      master: masterRef,
      srv: srvRef,
      mode: fc.oneof(w(16, fc.constant('request' as const)), w(3, fc.constant('publish' as const)), w(1, fc.constant('foreign' as const))),
      ct: fc.oneof(w(12, fc.constant('match' as const)), w(3, fc.constant('none' as const)), w(2, fc.constantFrom('mismatch' as const, 'garbage' as const, 'twice' as const, 'variant' as const))),
      ctGarbage: oddValue,
      body: bodyForTarget(target, forged),
      headers: fc.tuple(requestIdHeader, otherHeaders).map(([a, b]) => [...a, ...b]),
    }),
  );

/**
 * A case, sometimes with a burst of others sent at the same time: they meet
 * in one leader batch (same names, same request ids from the reused pool),
 * where group commit plans them together.
 */
export const fuzzCase: fc.Arbitrary<FuzzCase> = fc
  .tuple(singleCase, fc.oneof(w(4, fc.constant(undefined)), w(1, fc.array(singleCase, { minLength: 1, maxLength: 3 }))))
  .map(([c, burst]) => (burst ? { ...c, burst } : c));

// --- materializing a case ------------------------------------------------------

/** A small seeded PRNG for bodies too big to generate through fast-check. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const utf8 = new TextEncoder();
const deepEncoder = new Encoder({ maxDepth: 10_000 });

export function encodeAs(value: unknown, e: Enc): Uint8Array {
  return e === 'msgpack' ? deepEncoder.encode(value) : utf8.encode(JSON.stringify(value) ?? 'null');
}

/** What a report's item must get: NOT_OWNER for certain, or either answer. */
export type ItemExpect = 'not-owner' | 'either';

export interface Materialized {
  resolved: Resolved;
  /** The subject whose contract judges a gaffer reply: the target, or what master.leader was told in Gaffer-Subject. */
  effective: string;
  data: Uint8Array;
  headers: MsgHdrs | undefined;
  /** The headers as sent, for the record (huge values shortened). */
  headerList: Array<[string, string]>;
  bodyEnc: Enc | 'none';
  intent: Intent;
  note: string;
  /** The request as the product must read it, for a valid body: lets the judge check the answer's content. */
  request?: Record<string, unknown>;
  items?: ItemExpect[];
  /** Gaffer-Request-Id was taken from the reused pool (the first outcome of an earlier write may answer). */
  reusedId: boolean;
}

function pickOf<T>(xs: readonly T[], i: number): T | undefined {
  return xs.length === 0 ? undefined : xs[Math.abs(i) % xs.length];
}

function deepValue(depth: number, shape: 'array' | 'object', leaf: unknown = 1): unknown {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = shape === 'array' ? [v] : { a: v };
  return v;
}

/** deepBytes: nested arrays or maps in either encoding, built directly (encoders recurse). */
function deepBytes(depth: number, shape: 'array' | 'object', e: Enc, prefix: string, suffix: string): Uint8Array {
  if (e === 'json') {
    const open = shape === 'array' ? '[' : '{"a":';
    const close = shape === 'array' ? ']' : '}';
    return utf8.encode(prefix + open.repeat(depth) + '1' + close.repeat(depth) + suffix);
  }
  // msgpack: fixarray(1) or fixmap(1) "a" per level, then 1.
  const unit = shape === 'array' ? [0x91] : [0x81, 0xa1, 0x61];
  const out = new Uint8Array(unit.length * depth + 1);
  for (let i = 0; i < depth; i++) out.set(unit, i * unit.length);
  out[out.length - 1] = 0x01;
  return out;
}

function payloadValue(p: PayloadSpec): { value: unknown; invalid: boolean; present: boolean } {
  switch (p.k) {
    case 'none':
      return { value: undefined, invalid: false, present: false };
    case 'small':
      return { value: p.value, invalid: false, present: true };
    case 'deep':
      // Task values nest at most 64 deep (as the worker checks); deeper ones are refused, never stored.
      return { value: deepValue(p.depth, p.shape), invalid: p.depth > 64, present: true };
    case 'proto':
      return { value: JSON.parse('{"__proto__":{"polluted":true},"ok":1}'), invalid: false, present: true };
    case 'big':
      return { value: 'x'.repeat(p.bytes), invalid: p.bytes + 2 > MAX_STATE, present: true };
  }
}

interface Built {
  data: Uint8Array;
  enc: Enc | 'none';
  intent: Intent;
  note: string;
  request?: Record<string, unknown>;
  items?: ItemExpect[];
}

function buildReport(r: ReportSpec, e: Enc, live: Live): Built {
  const firstRes = r.items[0]?.res;
  const firstAssigned = firstRes?.k === 'assigned' ? pickOf(live.assigned, firstRes.i) : undefined;
  let worker: string;
  let workerLive = true;
  switch (r.who) {
    case 'owner':
      worker = firstAssigned?.worker ?? live.workers[0] ?? 'w1';
      break;
    case 'other-live':
      worker = live.workers.find((x) => x !== firstAssigned?.worker) ?? 'w2';
      break;
    case 'unknown':
      worker = 'w-nosuch';
      workerLive = false;
      break;
    case 'odd':
      worker = 'a.b';
      workerLive = false;
      break;
  }
  const realEpoch = live.epochs.get(worker);
  let epoch: unknown;
  let certainEpoch = false;
  switch (r.epoch) {
    case 'real':
      epoch = realEpoch ?? '1';
      certainEpoch = realEpoch === undefined;
      break;
    case 'random':
      epoch = '987654321987654321';
      certainEpoch = true;
      break;
    case 'zero':
      epoch = '0';
      certainEpoch = true;
      break;
    case 'other-worker':
      epoch = [...live.epochs].find(([id]) => id !== worker)?.[1] ?? '5';
      certainEpoch = true;
      break;
    case 'bad':
      epoch = 'not-a-lease';
      break;
    case 'number':
      epoch = Number(realEpoch ?? 1);
      break;
  }
  let invalid = r.epoch === 'bad' || r.epoch === 'number' || r.who === 'odd' || r.extraField;
  const reports: unknown[] = [];
  const items: ItemExpect[] = [];
  const deepOf = new Map<object, { depth: number; shape: 'array' | 'object' }>();
  for (const it of r.items) {
    let name: string;
    let id: string;
    let attempt: number;
    let exists = true;
    const a = it.res.k === 'assigned' ? pickOf(live.assigned, it.res.i) : undefined;
    const k = it.res.k === 'known' ? pickOf(live.known, it.res.i) : undefined;
    if (a) ({ name, id, attempt } = a);
    else if (k) ({ name, id } = k), (attempt = 1);
    else {
      name = it.res.k === 'name' ? it.res.name : 'fz-nosuch';
      id = 'fz-no-such-id';
      attempt = 1;
      exists = false;
    }
    const realAttempt = attempt;
    // (Another worker's assignment is no proof: the old owner of a handoff may still report.)
    let certain = !exists || certainEpoch || !workerLive;
    switch (it.id) {
      case 'wrong':
        id = `${id}-wrong`;
        certain = true;
        break;
      case 'empty':
        id = '';
        invalid = true;
        break;
      case 'long':
        id = 'i'.repeat(65);
        invalid = true;
        break;
      default:
    }
    let att: unknown = realAttempt;
    switch (it.attempt) {
      case 'next':
        att = realAttempt + 1;
        break;
      case 'far':
        att = realAttempt + 1000;
        certain = true;
        break;
      case 'prev':
        att = Math.max(1, realAttempt - 1);
        break;
      case 'zero':
        att = 0;
        invalid = true;
        break;
      case 'frac':
        att = 1.5;
        invalid = true;
        break;
      case 'str':
        att = String(realAttempt);
        invalid = true;
        break;
      default:
    }
    const TYPES = ['started', 'progress', 'checkpoint', 'completed', 'failed', 'stopped'];
    if (!TYPES.includes(it.type)) invalid = true;
    const p = payloadValue(it.payload);
    if (it.payload.k === 'deep' && p.value && typeof p.value === 'object') deepOf.set(p.value, it.payload);
    const rep: Record<string, unknown> = { type: it.type, name, id, attempt: att };
    if (p.present) {
      if (it.type === 'progress') rep.progress = p.value;
      if (it.type === 'checkpoint') rep.state = p.value;
      if (it.type === 'completed') rep.result = p.value;
      // The contract says a string; the product takes anything and makes it one.
      if (it.type === 'failed') rep.error = p.value;
      if (['progress', 'checkpoint', 'completed'].includes(it.type) && p.invalid) invalid = true;
    }
    if (it.type === 'checkpoint') rep.seq = it.seq;
    reports.push(rep);
    items.push(certain ? 'not-owner' : 'either');
  }
  // A big batch: the first report again, without its payload (so the batch stays small enough to build and send).
  const first = reports[0] as Record<string, unknown> | undefined;
  const light = first ? { type: first.type, name: first.name, id: first.id, attempt: first.attempt, ...(first.type === 'checkpoint' ? { seq: first.seq } : {}) } : undefined;
  for (let i = 0; i < r.repeat && light; i++) {
    reports.push(light);
    items.push(items[0]!);
  }
  if (reports.length > 1000) invalid = true;
  const body: Record<string, unknown> = { worker, epoch, reports };
  if (r.extraField) body.extra = true;
  const deepest = Math.max(0, ...r.items.map((it) => (it.payload.k === 'deep' ? it.payload.depth : 0)));
  let data: Uint8Array | undefined;
  if (e === 'msgpack' && deepest <= 1000) {
    try {
      data = encodeAs(body, e);
    } catch {
      data = undefined;
    }
  }
  if (data === undefined || e === 'json') {
    // JSON.stringify cannot walk the deepest values: put them in as text.
    e = 'json';
    const texts = new Map<string, string>();
    const replacer = (_k: string, v: unknown): unknown => {
      const d = deepOf.get(v as object);
      if (!d) return v;
      const token = `\u0001DEEP${texts.size}\u0001`;
      texts.set(JSON.stringify(token), new TextDecoder().decode(deepBytes(d.depth, d.shape, 'json', '', '')));
      return token;
    };
    let text = JSON.stringify(body, replacer);
    for (const [token, deep] of texts) text = text.replaceAll(token, deep);
    data = utf8.encode(text);
  }
  const deepOverflow = r.items.some((it) => it.payload.k === 'deep' && it.payload.depth >= 100_000 && ['progress', 'checkpoint', 'completed'].includes(it.type));
  // A failure's error that is no string: the product makes it one, or refuses it.
  const odd = r.items.some((it) => it.type === 'failed' && it.payload.k !== 'none' && !(it.payload.k === 'small' && typeof it.payload.value === 'string') && it.payload.k !== 'big');
  const intent: Intent = invalid || data.byteLength > MAX_REQUEST || deepOverflow || hasProto(body) ? 'invalid' : odd ? 'any' : 'valid';
  return { data, enc: e, intent, note: `report (${r.who}, epoch ${r.epoch}, ${reports.length})`, ...(intent !== 'invalid' ? { request: body, items } : {}) };
}

function buildAssign(a: AssignSpec, live: Live, worker: string | undefined): Built {
  const target = a.res.k === 'assigned' ? pickOf(live.assigned, a.res.i) : undefined;
  const name = target?.name ?? (a.res.k === 'name' ? a.res.name : 'fz-nosuch');
  const resource = { name, id: target?.id ?? 'fz-id', worker: worker ?? null, spec: {}, createdAt: '', revision: a.revision, attempt: target?.attempt ?? a.attempt, ...(a.hold ? { hold: true } : {}) };
  const epoch = a.epoch === 'real' && worker ? (live.epochs.get(worker) ?? '1') : '987654321';
  let ev: unknown;
  switch (a.shape) {
    case 'old':
      ev = { type: a.type, resource, revision: a.revision, epoch };
      break;
    case 'missing':
      ev = { type: a.type, revision: a.revision };
      break;
    case 'wrong-types':
      ev = { type: a.type, resource: { ...resource, name: 5, attempt: '1' }, revision: String(a.revision), epoch: 5 };
      break;
    case 'not-object':
      ev = [a.type, resource];
      break;
  }
  return { data: utf8.encode(JSON.stringify(ev)), enc: 'json', intent: 'any', note: `assign event (${a.shape}, ${a.type}, revision ${a.revision})` };
}

function buildHuge(b: Extract<Body, { k: 'huge' }>, effective: string, room: number): Built {
  const size = Math.max(16, Math.min(b.size, room));
  const rnd = prng(b.seed);
  switch (b.shape) {
    case 'pad-valid': {
      const req = effective === ClientSubject.add ? { name: b.name } : effective === ClientSubject.list || effective === ClientSubject.status ? {} : effective.startsWith('worker.') ? { worker: 'w1' } : { name: b.name };
      const text = JSON.stringify(req);
      const data = utf8.encode(text + ' '.repeat(Math.max(0, size - text.length)));
      const validSubject = (REQUEST_SUBJECTS as readonly string[]).includes(effective) && effective !== WorkerSubject.report;
      const intent: Intent = data.byteLength > MAX_REQUEST ? 'invalid' : validSubject ? 'valid' : 'any';
      return { data, enc: 'json', intent, note: `valid JSON padded to ${data.byteLength} bytes`, ...(intent === 'valid' ? { request: req } : {}) };
    }
    case 'spec-blob': {
      const req = { name: b.name, spec: { blob: 'x'.repeat(Math.max(0, size - 40)) } };
      const data = encodeAs(req, b.enc);
      // The contract bounds the spec as msgpack (64 KiB): just under it is a valid add.
      const fits = mpEncode(req.spec).byteLength <= MAX_SPEC && data.byteLength <= MAX_REQUEST;
      const intent: Intent = fits && effective === ClientSubject.add ? 'valid' : 'invalid';
      return { data, enc: b.enc, intent, note: `spec of ${data.byteLength} bytes`, ...(intent === 'valid' ? { request: { name: b.name } } : {}) };
    }
    case 'bin': {
      const blob = new Uint8Array(Math.max(0, size - 32));
      for (let i = 0; i < blob.length; i += 997) blob[i] = Math.floor(rnd() * 256);
      const data = mpEncode({ name: b.name, spec: { bin: blob } });
      return { data, enc: 'msgpack', intent: 'invalid', note: `msgpack bin of ${data.byteLength} bytes` };
    }
    case 'garbage': {
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i++) data[i] = Math.floor(rnd() * 256);
      return { data, enc: b.enc, intent: size > MAX_REQUEST ? 'invalid' : 'any', note: `${size} random bytes` };
    }
    case 'text': {
      const text = JSON.stringify({ name: b.name.slice(0, 1) + 'é'.repeat(Math.floor((size - 20) / 2)) });
      const data = utf8.encode(text);
      return { data, enc: 'json', intent: 'invalid', note: `unicode name of ${data.byteLength} bytes` };
    }
  }
}

function buildDeep(b: Extract<Body, { k: 'deep' }>, effective: string): Built {
  if (b.shape === 'spec') {
    const data =
      b.enc === 'json'
        ? deepBytes(b.depth, 'object', 'json', '{"name":"deep","spec":', '}')
        : Uint8Array.from([0x82, 0xa4, ...utf8.encode('name'), 0xa4, ...utf8.encode('deep'), 0xa4, ...utf8.encode('spec'), ...deepBytes(b.depth, 'object', 'msgpack', '', '')]);
    // spec = {a:{a:…1}}: the spec is level 0 and the innermost value level `depth`; the contract allows 16.
    const intent: Intent = b.depth > 16 || effective !== ClientSubject.add ? 'invalid' : 'valid';
    return { data, enc: b.enc, intent, note: `spec nested ${b.depth} deep`, ...(intent === 'valid' ? { request: { name: 'deep' } } : {}) };
  }
  return { data: deepBytes(b.depth, b.shape, b.enc, '', ''), enc: b.enc, intent: 'invalid', note: `${b.shape}s nested ${b.depth} deep` };
}

function buildBody(c: FuzzCase, effective: string, live: Live, worker: string | undefined, room: number): Built {
  const b = c.body;
  switch (b.k) {
    case 'empty':
      return { data: new Uint8Array(0), enc: 'none', intent: 'any', note: 'empty body' };
    case 'value': {
      let data: Uint8Array;
      try {
        data = encodeAs(b.value, b.enc);
      } catch {
        data = utf8.encode('null');
      }
      const intent: Intent = hasProto(b.value) ? 'invalid' : b.intent;
      const request = intent === 'valid' && b.value && typeof b.value === 'object' ? (b.value as Record<string, unknown>) : undefined;
      return { data, enc: b.enc, intent, note: b.note, ...(request ? { request } : {}) };
    }
    case 'raw':
      return { data: b.bytes, enc: b.enc, intent: b.intent, note: b.note };
    case 'huge':
      return buildHuge(b, effective, room);
    case 'deep':
      return buildDeep(b, effective);
    case 'report':
      return buildReport(b.report, b.enc, live);
    case 'assign':
      return buildAssign(b.assign, live, worker);
    case 'ack': {
      const v: Record<string, unknown> = { ids: b.ack.ids };
      if (b.ack.errors !== undefined) v.errors = b.ack.errors;
      if (b.ack.extra) v.extra = 1;
      return { data: mpEncode(v), enc: 'msgpack', intent: 'any', note: 'ack' };
    }
  }
}

const CT = { json: 'application/json', msgpack: 'application/msgpack' } as const;
const CT_VARIANTS = { json: ['application/json', 'Application/JSON', 'application/json; charset=utf-8'], msgpack: ['application/msgpack', ' APPLICATION/MSGPACK ', 'application/msgpack; x=y', 'application/msgpackish'] };

function contentTypeHeaders(c: FuzzCase, bodyEnc: Enc | 'none'): Array<[string, string]> {
  const e: Enc = bodyEnc === 'none' ? 'json' : bodyEnc;
  const other: Enc = e === 'json' ? 'msgpack' : 'json';
  switch (c.ct) {
    case 'match':
      return e === 'json' ? [] : [[Header.contentType, CT.msgpack]];
    case 'none':
      return [];
    case 'mismatch':
      return [[Header.contentType, CT[other]]];
    case 'garbage':
      return [[Header.contentType, c.ctGarbage]];
    case 'twice':
      return [[Header.contentType, CT[e]], [Header.contentType, CT[other]]];
    case 'variant':
      return [[Header.contentType, CT_VARIANTS[e][Math.abs(c.ctGarbage.length) % CT_VARIANTS[e].length]!]];
  }
}

/**
 * materialize turns a case into what is sent, against the live cluster.
 * `caseNo` makes "unique" request ids unique.
 */
export function materialize(c: FuzzCase, live: Live, caseNo: number, runTag: string, member = 0): Materialized {
  const resolved = resolve(c.target, { worker: c.worker, master: c.master, srv: c.srv }, live);
  const list: Array<[string, string]> = [];
  if (c.target === 'master.leader' && c.forged !== undefined) list.push([Header.subject, c.forged]);
  for (const h of c.headers) {
    if ('id' in h) {
      list.push([h.key, h.id === 'unique' ? `fz-${runTag}-${caseNo}-${member}-${h.n % 1000}` : `fz-dup-${h.n}`]);
    } else if ('huge' in h) list.push([h.key, h.huge.ch.repeat(h.huge.n)]);
    else list.push([h.key, h.value]);
  }
  // The leader reads the first Gaffer-Subject (the forged one, if any), trimmed as the NATS client trims header values.
  const effective = c.target === 'master.leader' ? (list.find(([k]) => k === Header.subject)?.[1] ?? '').trim() : resolved.subject;
  const headerBytes = list.reduce((n, [k, v]) => n + k.length + Buffer.byteLength(v) + 4, 64);
  const room = MAX_PAYLOAD - headerBytes - 256;
  const built = buildBody(c, effective, live, resolved.worker, room);
  const all: Array<[string, string]> = [...contentTypeHeaders(c, built.enc), ...list];
  let headers: MsgHdrs | undefined;
  if (all.length > 0) {
    headers = natsHeaders();
    for (const [k, v] of all) headers.append(k, v);
  }
  // Any valid id but this case's own may have been used before (the pool, 'rrr…', 'm1'): dedupe may answer with its first outcome.
  const rid = headers?.get(Header.requestId) ?? '';
  const reusedId = rid !== '' && REQUEST_ID_RE.test(rid) && !rid.startsWith(`fz-${runTag}-${caseNo}-`);
  return {
    resolved,
    effective,
    data: built.data,
    headers,
    headerList: all.map(([k, v]) => [k, v.length > 80 ? `${v.slice(0, 40)}…(${v.length} chars)` : v]),
    bodyEnc: built.enc,
    intent: built.intent,
    note: built.note,
    ...(built.request ? { request: built.request } : {}),
    ...(built.items ? { items: built.items } : {}),
    reusedId,
  };
}
