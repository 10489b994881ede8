// Typed errors. Codes travel on the wire as strings; callers branch on `code`,
// never on message text.

export const ErrorCode = {
  BAD_REQUEST: 'BAD_REQUEST',
  NOT_FOUND: 'NOT_FOUND',
  /** The request does not fit the resource's state (e.g. restarting one that is running). */
  CONFLICT: 'CONFLICT',
  /** A task report or checkpoint from a worker incarnation that no longer runs that attempt. */
  NOT_OWNER: 'NOT_OWNER',
  NO_LEADER: 'NO_LEADER',
  TIMEOUT: 'TIMEOUT',
  UNAVAILABLE: 'UNAVAILABLE',
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const CODES = new Set<string>(Object.values(ErrorCode));
export function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === 'string' && CODES.has(x);
}

export interface WireError {
  code: ErrorCode;
  message: string;
}

export class GafferError extends Error {
  override name = 'GafferError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
  toWire(): WireError {
    return { code: this.code, message: this.message };
  }
}

export class BadRequestError extends GafferError {
  override name = 'BadRequestError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.BAD_REQUEST, message, options);
  }
}
export class NotFoundError extends GafferError {
  override name = 'NotFoundError';
  constructor(message: string) {
    super(ErrorCode.NOT_FOUND, message);
  }
}
export class ConflictError extends GafferError {
  override name = 'ConflictError';
  constructor(message: string) {
    super(ErrorCode.CONFLICT, message);
  }
}
export class NotOwnerError extends GafferError {
  override name = 'NotOwnerError';
  constructor(message: string) {
    super(ErrorCode.NOT_OWNER, message);
  }
}
export class NoLeaderError extends GafferError {
  override name = 'NoLeaderError';
  constructor(message = 'no leader is known; try again shortly') {
    super(ErrorCode.NO_LEADER, message);
  }
}
export class TimeoutError extends GafferError {
  override name = 'TimeoutError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.TIMEOUT, message, options);
  }
}
export class UnavailableError extends GafferError {
  override name = 'UnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.UNAVAILABLE, message, options);
  }
}
/** NoRespondersError: nobody subscribes to the subject, so the request certainly did not run. */
export class NoRespondersError extends UnavailableError {
  override name = 'NoRespondersError';
}
export class InternalError extends GafferError {
  override name = 'InternalError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.INTERNAL, message, options);
  }
}

/**
 * NotLeaderError means a fenced write was rejected: this master's election key
 * is gone or newer than the one it led with. It never reaches a client; the
 * master that sees it steps down and forwards the request instead.
 */
export class NotLeaderError extends Error {
  override name = 'NotLeaderError';
}

/** toWire maps any thrown value to a wire error; unknown failures become INTERNAL. */
export function toWire(err: unknown): WireError {
  if (err instanceof GafferError) return err.toWire();
  const message = err instanceof Error ? err.message : String(err);
  return { code: ErrorCode.INTERNAL, message };
}

/** fromWire rebuilds a typed error from a reply's `error` field. */
export function fromWire(e: unknown): GafferError {
  if (e && typeof e === 'object') {
    const { code, message } = e as Record<string, unknown>;
    if (isErrorCode(code)) return new GafferError(code, typeof message === 'string' ? message : code);
  }
  return new InternalError('malformed error reply');
}
