import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { restartPolicyOf, taskKindOf, validateAdd, validateEmpty, validateId, validateName, validateNameRequest, validateSpec } from '#protocol/validate.js';
import { decodeStored, decodeWorkerInfo } from '#protocol/stored.js';
import { BadRequestError, ErrorCode } from '#protocol/errors.js';
import { packed } from '#protocol/codec.js';
import { respond, respondError } from '#platform/nats/bus.js';
import { answerPing } from '#platform/nats/prober.js';
import { MemBus } from '../fakes/bus.js';
import { headers as natsHeaders } from 'nats';
import { expired, forwardHeaders, parseRequest } from '#protocol/request.js';
import { ClientSubject, Header } from '#protocol/subjects.js';
import { FakeClock } from '../fakes/clock.js';

function rejects(fn: () => unknown, mentions: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BadRequestError, `expected BadRequestError, got ${String(err)}`);
    assert.equal(err.code, ErrorCode.BAD_REQUEST);
    assert.match(err.message, mentions);
    return true;
  });
}

/** nest wraps a leaf in `levels` objects: nest(1, x) is {a: x}. */
function nest(levels: number, leaf: unknown): Record<string, unknown> {
  let v: unknown = leaf;
  for (let i = 0; i < levels; i++) v = { a: v };
  return v as Record<string, unknown>;
}

describe('validateName', () => {
  const valid = ['a', 'A', '0', 'svc', 'svc-1', 'svc_1', 'svc.alpha', 'a.b.c', 'a..b', 'x.', 'a'.repeat(128)];
  for (const name of valid) {
    test(`accepts ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}…(${name.length})` : name)}`, () => {
      assert.equal(validateName(name), name);
    });
  }

  test('missing is its own error', () => rejects(() => validateName(undefined), /"name" is required/));

  for (const v of [null, 42, true, ['a'], { a: 1 }]) {
    test(`non-string ${JSON.stringify(v)} is rejected`, () => rejects(() => validateName(v), /must be a string/));
  }

  const invalid: Array<[string, string]> = [
    ['empty', ''],
    ['path traversal', '../x'],
    ['slash', 'a/b'],
    ['space', 'a b'],
    ['NATS wildcard *', '*'],
    ['NATS wildcard >', '>'],
    ['wildcard inside', 'a.*'],
    ['leading dot', '.a'],
    ['leading dash', '-a'],
    ['leading underscore', '_a'],
    ['129 characters', 'a'.repeat(129)],
    ['trailing newline', 'abc\n'],
    ['tab', 'a\tb'],
    ['non-ASCII', 'café'],
    ['NUL', 'a\u0000b'],
  ];
  for (const [what, name] of invalid) {
    test(`rejects ${what}`, () => rejects(() => validateName(name), /invalid name/));
  }

  test('the error quotes at most 140 characters of a huge name', () => {
    try {
      validateName('/'.repeat(10_000));
      assert.fail('expected a throw');
    } catch (err) {
      assert.ok(err instanceof BadRequestError);
      assert.ok(err.message.length < 400, `message is ${err.message.length} chars`);
    }
  });
});

describe('validateSpec', () => {
  test('absent spec becomes {}', () => assert.deepEqual(validateSpec(undefined), {}));

  test('returns a valid spec unchanged', () => {
    const spec = { kind: 'noop', n: 1, list: [1, 'a', null, false, { b: [] }] };
    assert.equal(validateSpec(spec), spec);
  });

  for (const v of [null, 'x', 3, true, [], [{ a: 1 }]]) {
    test(`non-object ${JSON.stringify(v)} is rejected`, () => rejects(() => validateSpec(v), /"spec" must be an object/));
  }

  test('16 levels deep is allowed, 17 is not', () => {
    // The spec object itself is level 0, so a leaf inside 16 nested objects sits at level 16.
    assert.ok(validateSpec(nest(16, 1)));
    rejects(() => validateSpec(nest(17, 1)), /deeper than 16/);
  });

  test('depth counts arrays as levels too', () => {
    let v: unknown = 1;
    for (let i = 0; i < 17; i++) v = [v];
    rejects(() => validateSpec({ a: v }), /deeper than 16/);
  });

  test('a very deep spec fails fast instead of overflowing the stack', () => {
    rejects(() => validateSpec(nest(100_000, 1)), /deeper than 16/);
  });

  test('over 64 KiB (msgpack-encoded) is rejected; just under is fine', () => {
    assert.ok(validateSpec({ s: 'x'.repeat(64 * 1024 - 16) }));
    rejects(() => validateSpec({ s: 'x'.repeat(64 * 1024) }), /larger than 65536 bytes/);
  });

  test('any kind name passes (an unknown one waits for a worker that runs it); no kind passes', () => {
    assert.deepEqual(validateSpec({ kind: 'noop' }), { kind: 'noop' });
    assert.deepEqual(validateSpec({ kind: 'crawl2' }), { kind: 'crawl2' });
    assert.deepEqual(validateSpec({ other: 1 }), { other: 1 });
  });

  for (const kind of ['', 'a.b', 'a b', '*', 'x'.repeat(65), 1, null, ['noop'], { noop: true }]) {
    test(`kind ${JSON.stringify(kind).slice(0, 20)} is not a kind name`, () => rejects(() => validateSpec({ kind }), /invalid spec\.kind/));
  }

  test('restart policy: defaults, limits, unknown fields', () => {
    assert.deepEqual(validateSpec({ restart: { attempts: 5 } }), { restart: { attempts: 5 } });
    assert.deepEqual(restartPolicyOf({}), { attempts: 3, delayMs: 1000, maxDelayMs: 30000, reschedule: true });
    assert.deepEqual(restartPolicyOf({ restart: { delayMs: 60000 } }), { attempts: 3, delayMs: 60000, maxDelayMs: 60000, reschedule: true });
    rejects(() => validateSpec({ restart: { attempts: 0 } }), /attempts" must be a whole number from 1/);
    rejects(() => validateSpec({ restart: { delayMs: 1.5 } }), /delayMs" must be a whole number/);
    rejects(() => validateSpec({ restart: { delayMs: 5000, maxDelayMs: 10 } }), /maxDelayMs" must be at least delayMs/);
    rejects(() => validateSpec({ restart: { reschedule: 'yes' } }), /reschedule" must be true or false/);
    rejects(() => validateSpec({ restart: { tries: 1 } }), /unknown field "spec\.restart\.tries"/);
    rejects(() => validateSpec({ restart: [] }), /"spec\.restart" must be an object/);
  });

  for (const n of [NaN, Infinity, -Infinity]) {
    test(`non-finite ${n} is rejected, even nested`, () => {
      rejects(() => validateSpec({ n }), /must be finite/);
      rejects(() => validateSpec({ a: [1, { b: n }] }), /must be finite/);
    });
  }

  // msgpack can carry values JSON cannot; none of them belong in a spec.
  const notJson: Array<[string, unknown]> = [
    ['Date', new Date(0)],
    ['binary', new Uint8Array([1])],
    ['undefined', undefined],
    ['bigint', 1n],
    ['Map', new Map()],
    ['function', () => 1],
  ];
  for (const [what, v] of notJson) {
    test(`${what} inside a spec is rejected`, () => rejects(() => validateSpec({ v }), /only JSON values/));
  }
});

describe('request validation', () => {
  test('validateAdd returns exactly name and spec', () => {
    assert.deepEqual(validateAdd({ name: 'a', spec: { kind: 'noop' } }), { name: 'a', spec: { kind: 'noop' } });
    assert.deepEqual(validateAdd({ name: 'a' }), { name: 'a', spec: {} });
  });

  test('validateAdd rejects unknown fields, naming the field', () => {
    rejects(() => validateAdd({ name: 'a', spec: {}, worker: 'w1' }), /unknown field "worker"; expected name, spec/);
  });

  test('validateAdd checks the name and the spec', () => {
    rejects(() => validateAdd({ spec: {} }), /"name" is required/);
    rejects(() => validateAdd({ name: 'a b' }), /invalid name/);
    rejects(() => validateAdd({ name: 'a', spec: [] }), /"spec" must be an object/);
  });

  for (const body of [null, undefined, 'a', 1, ['a']]) {
    test(`body ${JSON.stringify(body)} is not an object`, () => {
      rejects(() => validateAdd(body), /must be a JSON object/);
      rejects(() => validateNameRequest(body), /must be a JSON object/);
      rejects(() => validateEmpty(body), /must be a JSON object/);
    });
  }

  test('validateNameRequest takes only name', () => {
    assert.deepEqual(validateNameRequest({ name: 'a.b' }), { name: 'a.b' });
    rejects(() => validateNameRequest({ name: 'a', spec: {} }), /unknown field "spec"; expected name$/);
    rejects(() => validateNameRequest({}), /"name" is required/);
  });

  test('validateEmpty takes nothing', () => {
    assert.deepEqual(validateEmpty({}), {});
    rejects(() => validateEmpty({ verbose: true }), /unknown field "verbose"; expected none/);
  });

  test('a JSON "__proto__" key is an unknown field, not a prototype', () => {
    rejects(() => validateNameRequest(JSON.parse('{"name":"a","__proto__":{"x":1}}')), /unknown field "__proto__"/);
  });
});

describe('validateId', () => {
  for (const id of ['m1', 'worker-ab12cd34', 'W_9', 'x'.repeat(64)]) {
    test(`accepts ${id.slice(0, 20)}`, () => assert.equal(validateId(id, 'worker'), id));
  }
  for (const id of ['', 'a.b', 'a b', '*', '>', 'a/b', 'x'.repeat(65), 7, undefined]) {
    test(`rejects ${JSON.stringify(id)}`, () => rejects(() => validateId(id, 'worker'), /invalid worker id/));
  }
});

describe('taskKindOf', () => {
  test('is the spec\'s kind, noop by default', () => {
    assert.equal(taskKindOf({}), 'noop');
    assert.equal(taskKindOf({ kind: 'crawl' }), 'crawl');
    assert.equal(taskKindOf({ kind: 'my-kind' }), 'my-kind');
  });
});

describe('stored records', () => {
  test('decodeStored fills defaults: a record from before the task runtime is pending, or starting where placed', () => {
    const got = decodeStored(packed.encode({ name: 'a', id: 'u1', createdAt: 't' }));
    assert.deepEqual(got, { name: 'a', id: 'u1', worker: null, spec: {}, createdAt: 't', state: 'pending', attempt: 0, failures: 0 });
    const placed = decodeStored(packed.encode({ name: 'a', id: 'u1', worker: 'w1', createdAt: 't' }));
    assert.equal(placed.state, 'starting');
  });

  test('decodeStored keeps only the stored fields', () => {
    const got = decodeStored(packed.encode({ name: 'a', id: 'u1', worker: 'w1', spec: { k: 1 }, createdAt: 't', epoch: 'L1', state: 'running', attempt: 2, failures: 1, error: 'e', junk: 1 }));
    assert.deepEqual(got, { name: 'a', id: 'u1', worker: 'w1', spec: { k: 1 }, createdAt: 't', state: 'running', attempt: 2, failures: 1, error: 'e' });
  });

  test('decodeStored refuses an unknown state by falling back to what the placement says', () => {
    assert.equal(decodeStored(packed.encode({ name: 'a', id: 'u1', createdAt: 't', state: 'exploded' })).state, 'pending');
  });

  for (const v of [null, 1, 'x', { name: 'a', id: 'u1' }, { name: 1, id: 'u1', createdAt: 't' }]) {
    test(`decodeStored refuses ${JSON.stringify(v)}`, () => {
      assert.throws(() => decodeStored(packed.encode(v)), /stored resource is malformed/);
    });
  }

  test('decodeWorkerInfo reads id, capacity, fence window and kinds, and refuses anything else', () => {
    assert.deepEqual(decodeWorkerInfo(packed.encode({ id: 'w1', capacity: 5, fenceMs: 800, kinds: ['noop', 7], labels: { zone: 'eu', bad: 1 }, extra: 1 })), {
      id: 'w1', capacity: 5, fenceMs: 800, kinds: ['noop'], labels: { zone: 'eu' },
    });
    assert.throws(() => decodeWorkerInfo(packed.encode({ id: 'w1', capacity: '5', fenceMs: 800, kinds: [] })), /stored worker is malformed/);
    assert.throws(() => decodeWorkerInfo(packed.encode({ id: 'w1', capacity: 5, kinds: [] })), /stored worker is malformed/);
    assert.throws(() => decodeWorkerInfo(packed.encode({ id: 'w1', capacity: 5, fenceMs: 800 })), /stored worker is malformed/);
    assert.throws(() => decodeWorkerInfo(packed.encode(null)), /stored worker is malformed/);
  });
});

describe('answers go only to inboxes', () => {
  test('respond, respondError and answerPing publish on an inbox and nowhere else', () => {
    const bus = new MemBus(new FakeClock());
    for (const reply of ['_INBOX.abc.1', '_INBOX_client.abc.1']) {
      respond(bus, reply, 'application/json', { ok: true });
      respondError(bus, reply, 'application/json', new BadRequestError('no'));
      answerPing(bus, { subject: 'worker.w1.status', data: new Uint8Array(), reply });
    }
    for (const reply of ['events.resource.added', 'worker.w1.assign', '_INBOX', 'x._INBOX.a']) {
      respond(bus, reply, 'application/json', { ok: true });
      respondError(bus, reply, 'application/json', new BadRequestError('no'));
      answerPing(bus, { subject: 'worker.w1.status', data: new Uint8Array(), reply });
    }
    assert.deepEqual(bus.published.map((m) => m.subject), ['_INBOX.abc.1', '_INBOX.abc.1', '_INBOX.abc.1', '_INBOX_client.abc.1', '_INBOX_client.abc.1', '_INBOX_client.abc.1']);
  });
});

describe('Gaffer-Timeout-Ms', () => {
  const parse = (timeout?: string) => {
    const h = natsHeaders();
    if (timeout !== undefined) h.set(Header.timeoutMs, timeout);
    return parseRequest(ClientSubject.add, new TextEncoder().encode('{"name":"a"}'), h, '_INBOX.x', 1000);
  };
  test('a whole number of ms from 1 to an hour is kept, crosses the hop to the leader, and expires the request after that long', () => {
    const req = parse('5000');
    assert.equal(req.timeoutMs, 5000);
    assert.equal(forwardHeaders({ ...req, id: 'r1' }, 'm2').get(Header.timeoutMs), '5000');
    assert.equal(expired(req, 6000), false);
    assert.equal(expired(req, 6001), true);
    assert.equal(parse().timeoutMs, undefined);
    assert.equal(expired(parse(), 1e12), false, 'without it a request never expires');
  });
  test('anything else is BAD_REQUEST', () => {
    for (const bad of ['0', '-1', '1.5', 'soon', '3600001', '1e3x']) rejects(() => parse(bad), /Gaffer-Timeout-Ms/);
  });
});
