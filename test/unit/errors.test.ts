import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BadRequestError,
  ErrorCode,
  fromWire,
  GafferError,
  InternalError,
  isErrorCode,
  NoLeaderError,
  NoRespondersError,
  NotFoundError,
  NotLeaderError,
  TimeoutError,
  toWire,
  UnavailableError,
} from '#protocol/errors.js';

describe('error classes', () => {
  const cases: Array<[GafferError, string, ErrorCode]> = [
    [new BadRequestError('m'), 'BadRequestError', ErrorCode.BAD_REQUEST],
    [new NotFoundError('m'), 'NotFoundError', ErrorCode.NOT_FOUND],
    [new NoLeaderError('m'), 'NoLeaderError', ErrorCode.NO_LEADER],
    [new TimeoutError('m'), 'TimeoutError', ErrorCode.TIMEOUT],
    [new UnavailableError('m'), 'UnavailableError', ErrorCode.UNAVAILABLE],
    [new NoRespondersError('m'), 'NoRespondersError', ErrorCode.UNAVAILABLE],
    [new InternalError('m'), 'InternalError', ErrorCode.INTERNAL],
  ];
  for (const [err, name, code] of cases) {
    test(`${name} has code ${code}`, () => {
      assert.ok(err instanceof GafferError);
      assert.ok(err instanceof Error);
      assert.equal(err.name, name);
      assert.equal(err.code, code);
      assert.equal(err.message, 'm');
      assert.deepEqual(err.toWire(), { code, message: 'm' });
    });
  }

  test('NoRespondersError is an UnavailableError, so callers may treat both as retryable', () => {
    assert.ok(new NoRespondersError('x') instanceof UnavailableError);
  });

  test('NoLeaderError has a default message', () => {
    assert.match(new NoLeaderError().message, /no leader/);
  });

  test('cause is kept', () => {
    const cause = new Error('root');
    assert.equal(new UnavailableError('x', { cause }).cause, cause);
    assert.equal(new BadRequestError('x', { cause }).cause, cause);
  });

  test('NotLeaderError is not a GafferError: it must never reach a client as such', () => {
    const e = new NotLeaderError('fenced');
    assert.ok(!(e instanceof GafferError));
    assert.equal(e.name, 'NotLeaderError');
  });
});

describe('isErrorCode', () => {
  test('accepts every code and nothing else', () => {
    for (const c of Object.values(ErrorCode)) assert.equal(isErrorCode(c), true);
    for (const x of ['bad_request', 'toString', '', 'OK', undefined, null, 1, {}]) assert.equal(isErrorCode(x), false);
  });
});

describe('toWire', () => {
  test('a GafferError keeps its code and message, and nothing else', () => {
    const w = toWire(new NotFoundError('no resource named a'));
    assert.deepEqual(w, { code: 'NOT_FOUND', message: 'no resource named a' });
  });

  test('a plain Error becomes INTERNAL with its message', () => {
    assert.deepEqual(toWire(new TypeError('boom')), { code: 'INTERNAL', message: 'boom' });
  });

  test('NotLeaderError becomes INTERNAL (it is not a wire error)', () => {
    assert.equal(toWire(new NotLeaderError('x')).code, ErrorCode.INTERNAL);
  });

  test('non-Error throwables become INTERNAL with their string form', () => {
    assert.deepEqual(toWire('oops'), { code: 'INTERNAL', message: 'oops' });
    assert.deepEqual(toWire(42), { code: 'INTERNAL', message: '42' });
    assert.deepEqual(toWire(undefined), { code: 'INTERNAL', message: 'undefined' });
    assert.deepEqual(toWire(null), { code: 'INTERNAL', message: 'null' });
  });

  test('the wire form survives JSON', () => {
    const w = toWire(new TimeoutError('late'));
    assert.deepEqual(JSON.parse(JSON.stringify(w)), w);
  });
});

describe('fromWire', () => {
  test('round-trips every code: fromWire(toWire(e)) has the same code and message', () => {
    for (const code of Object.values(ErrorCode)) {
      const back = fromWire(JSON.parse(JSON.stringify(toWire(new GafferError(code, `msg ${code}`)))));
      assert.ok(back instanceof GafferError);
      assert.equal(back.code, code);
      assert.equal(back.message, `msg ${code}`);
      assert.deepEqual(back.toWire(), { code, message: `msg ${code}` });
    }
  });

  test('a missing or non-string message falls back to the code', () => {
    assert.equal(fromWire({ code: 'NO_LEADER' }).message, 'NO_LEADER');
    assert.equal(fromWire({ code: 'NO_LEADER', message: 7 }).message, 'NO_LEADER');
    assert.equal(fromWire({ code: 'NO_LEADER', message: 7 }).code, ErrorCode.NO_LEADER);
  });

  const malformed: unknown[] = [
    undefined,
    null,
    'NOT_FOUND',
    42,
    [],
    {},
    { message: 'x' },
    { code: 'not_found', message: 'x' },
    { code: 'TEAPOT', message: 'x' },
    { code: 404, message: 'x' },
  ];
  for (const e of malformed) {
    test(`malformed ${JSON.stringify(e)} becomes INTERNAL`, () => {
      const got = fromWire(e);
      assert.ok(got instanceof InternalError);
      assert.equal(got.code, ErrorCode.INTERNAL);
      assert.equal(got.message, 'malformed error reply');
    });
  }
});
