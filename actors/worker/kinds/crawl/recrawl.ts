// Conditional recrawls. A crawl with `conditional` on remembers, per page,
// the validators its server sent (ETag, Last-Modified) and the page's links,
// in the resource's store (ctx.store, a JetStream KV bucket outside etcd),
// under `page.<64-bit hash of the canonical URL>`. The next run asks with
// If-None-Match / If-Modified-Since: a 304 is counted (`notModified`), not
// emitted, and its remembered links are queued as if the page had been read
// again, so the crawl still reaches everything behind it; a changed page is
// emitted (in its run) and remembered anew.
//
// What is remembered is a cache: a page without validators, an error page,
// a page reached through a redirect, or one whose links do not fit one
// value is fetched in full every run, and an entry the store dropped (it is
// bounded) costs one full fetch. The decisions here are plain functions of
// values; index.ts does the I/O.

import { deflateSync, inflateSync } from 'fflate';
import { MAX_STATE_BYTES, type Json } from '#kinds/api.js';
import { hash64 } from './seen-set.js';

/** What a crawl remembers of one page. */
export interface Remembered {
  etag?: string;
  lastModified?: string;
  /** The page's links (canonical, absolute), followed again on a 304. */
  links: string[];
}

/** The parts of an answer that decide what is remembered. */
export interface Answer {
  status: number;
  etag: string | null;
  lastModified: string | null;
}

const VERSION = 1;

/** pageKey is the store key of a page: its canonical URL's 64-bit hash (the seen set's), in hex. */
export function pageKey(url: string): string {
  const [hi, lo] = hash64(url);
  return `page.${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}`;
}

/** conditionalHeaders are the request headers that ask the server whether a remembered page changed. */
export function conditionalHeaders(r: Remembered | undefined): Record<string, string> {
  if (!r) return {};
  const h: Record<string, string> = {};
  if (r.etag !== undefined) h['if-none-match'] = r.etag;
  if (r.lastModified !== undefined) h['if-modified-since'] = r.lastModified;
  return h;
}

/** isNotModified says whether an answer means "the remembered page is still current": a 304 to a conditional request. */
export function isNotModified(status: number, asked: Remembered | undefined): asked is Remembered {
  return status === 304 && asked !== undefined && (asked.etag !== undefined || asked.lastModified !== undefined);
}

/** rememberOf is what to remember of a fetched page, or undefined when nothing should be (not 2xx, or no validator). */
export function rememberOf(a: Answer, links: readonly string[]): Remembered | undefined {
  if (a.status < 200 || a.status >= 300) return undefined;
  const etag = a.etag?.trim() || undefined;
  const lm = a.lastModified?.trim();
  const lastModified = lm && Number.isFinite(Date.parse(lm)) ? lm : undefined;
  if (etag === undefined && lastModified === undefined) return undefined;
  return { ...(etag !== undefined ? { etag } : {}), ...(lastModified !== undefined ? { lastModified } : {}), links: [...new Set(links)].sort() };
}

// Links are sorted, front-coded (shared prefix length + rest) and deflated:
// one site's URLs share most of their text.
function pack(links: readonly string[]): string {
  const flat: Array<number | string> = [];
  let prev = '';
  for (const s of links) {
    let p = 0;
    const max = Math.min(prev.length, s.length);
    while (p < max && prev.charCodeAt(p) === s.charCodeAt(p)) p++;
    flat.push(p, s.slice(p));
    prev = s;
  }
  return Buffer.from(deflateSync(Buffer.from(JSON.stringify(flat), 'utf8'), { level: 6 })).toString('base64');
}

function unpack(s: string): string[] | undefined {
  let flat: unknown;
  try {
    flat = JSON.parse(Buffer.from(inflateSync(Buffer.from(s, 'base64'))).toString('utf8'));
  } catch {
    return undefined;
  }
  if (!Array.isArray(flat) || flat.length % 2 !== 0) return undefined;
  const out: string[] = [];
  let prev = '';
  for (let i = 0; i < flat.length; i += 2) {
    const p: unknown = flat[i];
    const rest: unknown = flat[i + 1];
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > prev.length || typeof rest !== 'string') return undefined;
    prev = prev.slice(0, p) + rest;
    out.push(prev);
  }
  return out;
}

/** encodeRemembered is the stored value; undefined when it would not fit one value (MAX_STATE_BYTES). */
export function encodeRemembered(r: Remembered): Json | undefined {
  const v: { [k: string]: Json } = { v: VERSION, l: pack(r.links) };
  if (r.etag !== undefined) v.e = r.etag;
  if (r.lastModified !== undefined) v.m = r.lastModified;
  return Buffer.byteLength(JSON.stringify(v), 'utf8') <= MAX_STATE_BYTES ? v : undefined;
}

/** decodeRemembered reads a stored value; anything it did not write is undefined (the page is fetched in full). */
export function decodeRemembered(j: Json | undefined): Remembered | undefined {
  if (j === null || typeof j !== 'object' || Array.isArray(j) || j.v !== VERSION || typeof j.l !== 'string') return undefined;
  const etag = typeof j.e === 'string' ? j.e : undefined;
  const lastModified = typeof j.m === 'string' ? j.m : undefined;
  if (etag === undefined && lastModified === undefined) return undefined;
  const links = unpack(j.l);
  if (!links) return undefined;
  return { ...(etag !== undefined ? { etag } : {}), ...(lastModified !== undefined ? { lastModified } : {}), links };
}
