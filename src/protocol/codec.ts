// Encodings: JSON on the client wire by default (so `nats req` just works),
// msgpack on request (Content-Type header) and for everything only gaffer reads.

import { Decoder, Encoder } from '@msgpack/msgpack';
import { BadRequestError } from './errors.js';

/** Largest request body accepted from a client; also bounds decoder work. */
export const MAX_REQUEST_BYTES = 256 * 1024;

export const ContentType = {
  json: 'application/json',
  msgpack: 'application/msgpack',
} as const;
export type ContentType = (typeof ContentType)[keyof typeof ContentType];

export function contentTypeOf(header: string | undefined): ContentType {
  return header?.trim().toLowerCase().startsWith(ContentType.msgpack) ? ContentType.msgpack : ContentType.json;
}

// The msgpack defaults allow 4 GiB strings; bound every length by the request cap.
const LIMIT = MAX_REQUEST_BYTES;
const decoder = new Decoder({
  maxStrLength: LIMIT,
  maxBinLength: LIMIT,
  maxArrayLength: LIMIT,
  maxMapLength: LIMIT,
  maxExtLength: LIMIT,
});
// Values we store can be larger than one request (none are today), so the
// store decoder gets its own, still bounded, limits.
const STORE_LIMIT = 1536 * 1024;
const storeDecoder = new Decoder({
  maxStrLength: STORE_LIMIT,
  maxBinLength: STORE_LIMIT,
  maxArrayLength: STORE_LIMIT,
  maxMapLength: STORE_LIMIT,
  maxExtLength: STORE_LIMIT,
});
const encoder = new Encoder({ ignoreUndefined: true });
const text = new TextDecoder('utf-8', { fatal: true });
const utf8 = new TextEncoder();

/**
 * noProto refuses a "__proto__" key in a JSON request, as the msgpack decoder
 * does: stored values are msgpack, and a key msgpack will not decode would
 * make a stored resource unreadable (by its worker, and by the next leader).
 */
function noProto(key: string, value: unknown): unknown {
  if (key === '__proto__') throw new BadRequestError('the key "__proto__" is not allowed');
  return value;
}

/** decodeRequest parses a client body; anything malformed is BAD_REQUEST. An empty body is `{}`. */
export function decodeRequest(data: Uint8Array, type: ContentType, limit = MAX_REQUEST_BYTES): unknown {
  if (data.byteLength > limit) {
    throw new BadRequestError(`request is ${data.byteLength} bytes; the limit is ${limit}`);
  }
  if (data.byteLength === 0) return {};
  try {
    return type === ContentType.msgpack ? decoder.decode(data) : JSON.parse(text.decode(data), noProto);
  } catch (cause) {
    if (cause instanceof BadRequestError) throw cause;
    throw new BadRequestError(`request body is not valid ${type === ContentType.msgpack ? 'msgpack' : 'JSON'}`, {
      cause,
    });
  }
}

export function encode(value: unknown, type: ContentType): Uint8Array {
  return type === ContentType.msgpack ? encoder.encode(value) : utf8.encode(JSON.stringify(value));
}

/** decodeReply parses a reply from gaffer; used by the typed client. */
export function decodeReply(data: Uint8Array, type: ContentType): unknown {
  return type === ContentType.msgpack ? storeDecoder.decode(data) : JSON.parse(text.decode(data));
}

/** Values in etcd and internal messages are msgpack. */
export const packed = {
  encode: (value: unknown): Uint8Array => encoder.encode(value),
  decode: (data: Uint8Array): unknown => storeDecoder.decode(data),
};

export const json = {
  encode: (value: unknown): Uint8Array => utf8.encode(JSON.stringify(value)),
  decode: (data: Uint8Array): unknown => JSON.parse(text.decode(data)),
};
