// The checkpoint codec. A checkpoint must fit MAX_STATE_BYTES (64 KiB of
// JSON) and a resume must be exact (no Bloom filters: a false positive would
// silently drop a page), so URL lists are front-coded (each entry as the
// length of the prefix it shares with the previous one plus the rest) and
// then deflated and base64'd. Sorted URLs of one site share most of their
// text, which front coding removes and deflate squeezes further: 5,000
// URLs like http://127.0.0.1:PORT/p/1234.html take about 8 KB of base64.
//
// The codec keeps list order as given; the crawl hands it the visited set
// sorted (which is what makes it small) and the frontier in queue order.

import { deflateSync, inflateSync } from 'fflate';
import type { Json } from '#kinds/api.js';
import type { Entry } from './frontier.js';

export const CHECKPOINT_VERSION = 1;

export interface CrawlState {
  /** Done URLs: never fetched again on resume. */
  visited: string[];
  /** Queued or in flight when the checkpoint was taken: fetched (again) on resume. */
  frontier: Entry[];
  pages: number;
  errors: number;
  skipped: number;
  /** Hosts parked so far (host:port); written only when there are any, so a crawl without them checkpoints as before. */
  parked?: string[];
  /** Pages answered 304 to a conditional fetch (recrawl.ts); written only when there are any. */
  notModified?: number;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** frontCode flattens a list to [prefixLen0, rest0, prefixLen1, rest1, ...]. */
function frontCode(list: readonly string[]): Array<number | string> {
  const out: Array<number | string> = [];
  let prev = '';
  for (const s of list) {
    const max = Math.min(prev.length, s.length);
    let p = 0;
    while (p < max && prev.charCodeAt(p) === s.charCodeAt(p)) p++;
    out.push(p, s.slice(p));
    prev = s;
  }
  return out;
}

function frontDecode(flat: unknown, what: string): string[] {
  if (!Array.isArray(flat) || flat.length % 2 !== 0) throw new CheckpointError(`checkpoint ${what}: not a front-coded list`);
  const out: string[] = [];
  let prev = '';
  for (let i = 0; i < flat.length; i += 2) {
    const p: unknown = flat[i];
    const rest: unknown = flat[i + 1];
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > prev.length || typeof rest !== 'string') {
      throw new CheckpointError(`checkpoint ${what}: bad entry ${i / 2}`);
    }
    prev = prev.slice(0, p) + rest;
    out.push(prev);
  }
  return out;
}

// JSON.stringify escapes lone surrogates, so any JS string survives the
// UTF-8 round trip through deflate.
// Level 6: within 10% of level 9's size here, at an eighth of its CPU.
// Raw deflate in pure JS (fflate), not node:zlib: this runs in a task thread,
// and Node 20 aborts the whole process ("close before init") when a thread is
// terminated between creating a native zlib handle and initialising it. The
// bytes are the same raw deflate as before, so older checkpoints still read.
const pack = (v: unknown): string => Buffer.from(deflateSync(Buffer.from(JSON.stringify(v), 'utf8'), { level: 6 })).toString('base64');

function unpack(s: unknown, what: string): unknown {
  if (typeof s !== 'string') throw new CheckpointError(`checkpoint ${what}: expected a base64 string`);
  try {
    return JSON.parse(Buffer.from(inflateSync(Buffer.from(s, 'base64'))).toString('utf8'));
  } catch (err) {
    throw new CheckpointError(`checkpoint ${what}: cannot inflate: ${(err as Error).message}`);
  }
}

export function encodeState(s: CrawlState): Json {
  return {
    v: CHECKPOINT_VERSION,
    pages: s.pages,
    errors: s.errors,
    skipped: s.skipped,
    visited: pack(frontCode(s.visited)),
    frontier: pack([frontCode(s.frontier.map((e) => e.url)), s.frontier.map((e) => e.depth)]),
    ...(s.parked && s.parked.length > 0 ? { parked: s.parked } : {}),
    ...(s.notModified ? { notModified: s.notModified } : {}),
  };
}

const count = (o: Record<string, unknown>, k: string): number => {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new CheckpointError(`checkpoint: ${k} must be a count, got ${String(v)}`);
  return v;
};

/** decodeState reverses encodeState; throws CheckpointError for anything it did not produce. */
export function decodeState(j: Json | undefined): CrawlState {
  if (j === null || typeof j !== 'object' || Array.isArray(j)) throw new CheckpointError('checkpoint: not an object');
  if (j.v !== CHECKPOINT_VERSION) throw new CheckpointError(`checkpoint: unsupported version ${JSON.stringify(j.v)} (want ${CHECKPOINT_VERSION})`);
  const visited = frontDecode(unpack(j.visited, 'visited'), 'visited');
  const f = unpack(j.frontier, 'frontier');
  if (!Array.isArray(f) || f.length !== 2) throw new CheckpointError('checkpoint frontier: expected [urls, depths]');
  const urls = frontDecode(f[0], 'frontier');
  const depths: unknown = f[1];
  if (!Array.isArray(depths) || depths.length !== urls.length) throw new CheckpointError('checkpoint frontier: depths do not match urls');
  const frontier = urls.map((url, i): Entry => {
    const depth: unknown = depths[i];
    if (typeof depth !== 'number' || !Number.isInteger(depth) || depth < 0) throw new CheckpointError(`checkpoint frontier: bad depth at ${i}`);
    return { url, depth };
  });
  const state: CrawlState = { visited, frontier, pages: count(j, 'pages'), errors: count(j, 'errors'), skipped: count(j, 'skipped') };
  if (j.parked !== undefined) {
    if (!Array.isArray(j.parked) || !j.parked.every((h) => typeof h === 'string')) throw new CheckpointError('checkpoint: parked must be a list of hosts');
    state.parked = j.parked as string[];
  }
  if (j.notModified !== undefined) state.notModified = count(j, 'notModified');
  return state;
}

/** stateBytes is the size the runtime measures a checkpoint by. */
export const stateBytes = (j: Json): number => Buffer.byteLength(JSON.stringify(j), 'utf8');
