import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ContentType,
  contentTypeOf,
  decodeReply,
  decodeRequest,
  encode,
  json,
  MAX_REQUEST_BYTES,
  packed,
} from '#protocol/codec.js';
import { BadRequestError, ErrorCode, GafferError } from '#protocol/errors.js';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** badRequest asserts a BAD_REQUEST whose message names the encoding, keeping the parser's error as cause. */
function badRequest(fn: () => unknown, mentions: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BadRequestError, `expected BadRequestError, got ${String(err)}`);
    assert.ok(err instanceof GafferError);
    assert.equal(err.code, ErrorCode.BAD_REQUEST);
    assert.equal(err.name, 'BadRequestError');
    assert.match(err.message, mentions);
    return true;
  });
}

const sample = {
  name: 'svc.alpha-1',
  spec: { kind: 'noop', n: 42, neg: -7, f: 1.5, t: true, z: null, list: [1, 'two', { three: 3 }], s: 'héllo ✓ 日本' },
};

describe('round trips', () => {
  test('JSON encode then decodeRequest returns the same value', () => {
    assert.deepEqual(decodeRequest(encode(sample, ContentType.json), ContentType.json), sample);
  });

  test('msgpack encode then decodeRequest returns the same value', () => {
    assert.deepEqual(decodeRequest(encode(sample, ContentType.msgpack), ContentType.msgpack), sample);
  });

  test('the two encodings really differ on the wire', () => {
    const j = encode(sample, ContentType.json);
    assert.equal(new TextDecoder().decode(j), JSON.stringify(sample));
    assert.deepEqual(encode(sample, ContentType.msgpack), packed.encode(sample));
    assert.notDeepEqual(encode(sample, ContentType.msgpack), j);
  });

  test('decodeReply reads both encodings', () => {
    assert.deepEqual(decodeReply(encode(sample, ContentType.json), ContentType.json), sample);
    assert.deepEqual(decodeReply(encode(sample, ContentType.msgpack), ContentType.msgpack), sample);
  });

  test('packed and json helpers round-trip', () => {
    assert.deepEqual(packed.decode(packed.encode(sample)), sample);
    assert.deepEqual(json.decode(json.encode(sample)), sample);
  });

  test('msgpack drops undefined fields instead of writing nil', () => {
    // Stored records rely on this: an absent optional field must stay absent.
    assert.deepEqual(packed.decode(packed.encode({ a: undefined, b: 1 })), { b: 1 });
  });

  test('store values may exceed the request cap', () => {
    const big = { s: 'x'.repeat(MAX_REQUEST_BYTES + 10) };
    assert.deepEqual(packed.decode(packed.encode(big)), big);
  });
});

describe('size limit', () => {
  test('a body of exactly MAX_REQUEST_BYTES is accepted', () => {
    const body = utf8(`"${'a'.repeat(MAX_REQUEST_BYTES - 2)}"`);
    assert.equal(body.byteLength, MAX_REQUEST_BYTES);
    const got = decodeRequest(body, ContentType.json) as string;
    assert.equal(got.length, MAX_REQUEST_BYTES - 2);
  });

  test('one byte more is BAD_REQUEST for JSON, even though it parses', () => {
    const body = utf8(`"${'a'.repeat(MAX_REQUEST_BYTES - 1)}"`);
    badRequest(() => decodeRequest(body, ContentType.json), new RegExp(`${MAX_REQUEST_BYTES + 1} bytes`));
  });

  test('the limit applies to msgpack too', () => {
    const body = packed.encode('a'.repeat(MAX_REQUEST_BYTES));
    assert.ok(body.byteLength > MAX_REQUEST_BYTES);
    badRequest(() => decodeRequest(body, ContentType.msgpack), /limit is 262144/);
  });
});

describe('malformed bodies', () => {
  const badJson: Array<[string, Uint8Array]> = [
    ['unterminated object', utf8('{')],
    ['missing value', utf8('{"a":}')],
    ['trailing garbage', utf8('{}x')],
    ['not JSON at all', utf8('undefined')],
    ['single quotes', utf8("{'a':1}")],
    ['invalid UTF-8', bytes(0x22, 0xff, 0x22)],
  ];
  for (const [what, body] of badJson) {
    test(`JSON: ${what} is BAD_REQUEST`, () => badRequest(() => decodeRequest(body, ContentType.json), /not valid JSON/));
  }

  const badMsgpack: Array<[string, Uint8Array]> = [
    ['reserved type byte 0xc1', bytes(0xc1)],
    ['truncated array', bytes(0x92, 0x01)],
    ['extra bytes after the value', bytes(0x01, 0x02)],
    ['string header claiming 4 GiB', bytes(0xdb, 0xff, 0xff, 0xff, 0xff)],
    ['map with a nil key', bytes(0x81, 0xc0, 0x01)],
    // fixmap{1} fixstr(9) "__proto__" 1: built by hand, since the encoder will not write such a key.
    ['__proto__ key', bytes(0x81, 0xa9, ...utf8('__proto__'), 0x01)],
  ];
  for (const [what, body] of badMsgpack) {
    test(`msgpack: ${what} is BAD_REQUEST`, () =>
      badRequest(() => decodeRequest(body, ContentType.msgpack), /not valid msgpack/));
  }

  test('the parser error is kept as cause', () => {
    try {
      decodeRequest(utf8('{'), ContentType.json);
      assert.fail('expected a throw');
    } catch (err) {
      assert.ok(err instanceof BadRequestError);
      assert.ok(err.cause instanceof SyntaxError);
    }
  });

  test('a failed decode leaves the shared decoder usable', () => {
    badRequest(() => decodeRequest(bytes(0x92, 0x01), ContentType.msgpack), /msgpack/);
    assert.deepEqual(decodeRequest(packed.encode({ ok: 1 }), ContentType.msgpack), { ok: 1 });
  });
});

describe('empty body', () => {
  test('is {} for both encodings', () => {
    assert.deepEqual(decodeRequest(new Uint8Array(0), ContentType.json), {});
    assert.deepEqual(decodeRequest(new Uint8Array(0), ContentType.msgpack), {});
  });

  test('is a fresh object each time, so one caller cannot taint the next', () => {
    const a = decodeRequest(new Uint8Array(0), ContentType.json);
    const b = decodeRequest(new Uint8Array(0), ContentType.json);
    assert.notEqual(a, b);
  });

  test('whitespace is not empty: it is malformed JSON', () => {
    badRequest(() => decodeRequest(utf8('  '), ContentType.json), /not valid JSON/);
  });
});

describe('contentTypeOf', () => {
  const cases: Array<[string | undefined, ContentType]> = [
    [undefined, ContentType.json],
    ['', ContentType.json],
    ['application/json', ContentType.json],
    ['text/plain', ContentType.json],
    ['application/x-msgpack', ContentType.json],
    ['application/msgpack', ContentType.msgpack],
    ['Application/MsgPack', ContentType.msgpack],
    ['  application/msgpack  ', ContentType.msgpack],
    ['application/msgpack; charset=binary', ContentType.msgpack],
  ];
  for (const [header, want] of cases) {
    test(`${JSON.stringify(header)} -> ${want}`, () => assert.equal(contentTypeOf(header), want));
  }

  test('constants are the registered media types', () => {
    assert.equal(ContentType.json, 'application/json');
    assert.equal(ContentType.msgpack, 'application/msgpack');
  });
});
