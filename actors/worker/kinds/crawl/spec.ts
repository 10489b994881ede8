// The crawl spec: parsed and checked in full before the first request, so a
// typo fails the attempt at once with a message naming the field, instead of
// a crawl that quietly does something else.

import { load } from 'cheerio/slim';
import type { Json } from '#kinds/api.js';
import { PARTITIONS, type PartitionBy } from './partition.js';

export interface CrawlSpec {
  seeds: string[];
  maxPages: number;
  maxDepth: number;
  sameHost: boolean;
  perHostRps: number;
  concurrency: number;
  obeyRobots: boolean;
  include: RegExp[];
  exclude: RegExp[];
  extract: Record<string, string>;
  timeoutMs: number;
  perHostConcurrency: number;
  sitemaps: boolean;
  maxRetries: number;
  backoffMs: number;
  backoffMaxMs: number;
  parkAfter: number;
  /** Remember validators and links per page and refetch conditionally (recrawl.ts). */
  conditional: boolean;
  /** spec.shards (a runtime field): set, the crawl runs as that many shards (sharded.ts); unset, as one task (index.ts). */
  shards: number | undefined;
  /** What a sharded crawl routes URLs by: host:port, or registrable domain (partition.ts). */
  partitionBy: PartitionBy;
}

export const DEFAULTS = {
  maxPages: 1000,
  maxDepth: 3,
  sameHost: true,
  perHostRps: 2,
  concurrency: 4,
  obeyRobots: true,
  timeoutMs: 10_000,
  perHostConcurrency: 2,
  sitemaps: false,
  /** Times one URL answered 429/503 is fetched again before its answer is kept. */
  maxRetries: 3,
  /** First back-off after a 429/503 without Retry-After (doubling per throttle in a row). */
  backoffMs: 1000,
  backoffMaxMs: 60_000,
  /** Network errors or timeouts in a row after which a host is parked. */
  parkAfter: 5,
  partitionBy: 'host',
} as const;

// These belong to the runtime (placement, restart policy), not to the kind.
const RUNTIME_FIELDS = new Set(['kind', 'restart', 'constraints', 'prefer', 'rebalance', 'schedule', 'shards']);
const CRAWL_FIELDS = new Set([
  'seeds', 'maxPages', 'maxDepth', 'sameHost', 'perHostRps', 'concurrency',
  'obeyRobots', 'include', 'exclude', 'extract', 'timeoutMs',
  'perHostConcurrency', 'sitemaps', 'maxRetries', 'backoffMs', 'backoffMaxMs', 'parkAfter',
  'conditional', 'partitionBy',
]);

export class CrawlSpecError extends Error {
  override name = 'CrawlSpecError';
}

const fail = (msg: string): never => {
  throw new CrawlSpecError(`crawl spec: ${msg}`);
};

const show = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

function integer(spec: Record<string, Json>, name: string, dflt: number, min: number): number {
  const v = spec[name];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    fail(`${name} must be an integer >= ${min}, got ${show(v)}`);
  }
  return v as number;
}

function positive(spec: Record<string, Json>, name: string, dflt: number, max = Number.MAX_VALUE): number {
  const v = spec[name];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    fail(`${name} must be a number > 0, got ${show(v)}`);
  }
  if ((v as number) > max) fail(`${name} must be at most ${max}, got ${show(v)}`);
  return v as number;
}

// Node timers fire at once (with a warning) beyond this.
const MAX_TIMER_MS = 2 ** 31 - 1;

function bool(spec: Record<string, Json>, name: string, dflt: boolean): boolean {
  const v = spec[name];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') fail(`${name} must be true or false, got ${show(v)}`);
  return v as boolean;
}

function patterns(spec: Record<string, Json>, name: string): RegExp[] {
  const v = spec[name];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(`${name} must be a list of regular expressions, got ${show(v)}`);
  return (v as Json[]).map((p, i) => {
    if (typeof p !== 'string') return fail(`${name}[${i}] must be a string, got ${show(p)}`);
    try {
      return new RegExp(p);
    } catch (err) {
      return fail(`${name}[${i}] is not a valid regular expression ${show(p)}: ${(err as Error).message}`);
    }
  });
}

function seeds(v: Json | undefined): string[] {
  if (!Array.isArray(v) || v.length === 0) {
    return fail(`seeds must be a non-empty list of http(s) URLs, got ${show(v)}`);
  }
  return v.map((s, i) => {
    if (typeof s !== 'string') return fail(`seeds[${i}] must be a URL string, got ${show(s)}`);
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      return fail(`seeds[${i}] is not a URL: ${show(s)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      fail(`seeds[${i}] must be http or https, got ${show(s)}`);
    }
    return s;
  });
}

function selectors(v: Json | undefined): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) {
    return fail(`extract must be an object of { field: "css selector" }, got ${show(v)}`);
  }
  // Selectors are compiled lazily by cheerio; trying each once against an
  // empty document surfaces a syntax error now rather than on the first page.
  const $ = load('');
  const out: Record<string, string> = {};
  for (const [field, sel] of Object.entries(v)) {
    if (typeof sel !== 'string' || sel.trim() === '') {
      fail(`extract.${field} must be a non-empty CSS selector string, got ${show(sel)}`);
    }
    try {
      $(sel as string);
    } catch (err) {
      fail(`extract.${field} is not a valid CSS selector ${show(sel)}: ${(err as Error).message}`);
    }
    out[field] = sel as string;
  }
  return out;
}

/** parseSpec validates a task spec, applying defaults; throws CrawlSpecError naming the bad field. */
export function parseSpec(spec: { [k: string]: Json }): CrawlSpec {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    return fail(`must be an object, got ${show(spec)}`);
  }
  const unknown = Object.keys(spec).filter((k) => !CRAWL_FIELDS.has(k) && !RUNTIME_FIELDS.has(k));
  if (unknown.length > 0) {
    const known = [...CRAWL_FIELDS].join(', ');
    fail(`unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')} (known: ${known})`);
  }
  // The platform checks spec.shards (1 to 256) when the resource is added.
  const shards = typeof spec.shards === 'number' ? spec.shards : undefined;
  const by = spec.partitionBy ?? DEFAULTS.partitionBy;
  if (!PARTITIONS.includes(by as PartitionBy)) fail(`partitionBy must be one of ${PARTITIONS.map((p) => `"${p}"`).join(', ')}, got ${show(by)}`);
  if (spec.partitionBy !== undefined && shards === undefined) fail('partitionBy needs spec.shards (an unsharded crawl runs every host in one task)');
  const conditional = bool(spec, 'conditional', spec.schedule !== undefined && spec.schedule !== null && shards === undefined);
  if (conditional && shards !== undefined) fail('conditional recrawls are not available on a sharded crawl (spec.shards) yet');
  const backoffMs = positive(spec, 'backoffMs', DEFAULTS.backoffMs, MAX_TIMER_MS);
  const backoffMaxMs = positive(spec, 'backoffMaxMs', Math.max(DEFAULTS.backoffMaxMs, backoffMs), MAX_TIMER_MS);
  if (backoffMaxMs < backoffMs) fail(`backoffMaxMs must be at least backoffMs (${backoffMs}), got ${show(backoffMaxMs)}`);
  return {
    seeds: seeds(spec.seeds),
    maxPages: integer(spec, 'maxPages', DEFAULTS.maxPages, 1),
    maxDepth: integer(spec, 'maxDepth', DEFAULTS.maxDepth, 0),
    sameHost: bool(spec, 'sameHost', DEFAULTS.sameHost),
    perHostRps: positive(spec, 'perHostRps', DEFAULTS.perHostRps),
    concurrency: integer(spec, 'concurrency', DEFAULTS.concurrency, 1),
    obeyRobots: bool(spec, 'obeyRobots', DEFAULTS.obeyRobots),
    include: patterns(spec, 'include'),
    exclude: patterns(spec, 'exclude'),
    extract: selectors(spec.extract),
    timeoutMs: positive(spec, 'timeoutMs', DEFAULTS.timeoutMs, MAX_TIMER_MS),
    perHostConcurrency: integer(spec, 'perHostConcurrency', DEFAULTS.perHostConcurrency, 1),
    sitemaps: bool(spec, 'sitemaps', DEFAULTS.sitemaps),
    maxRetries: integer(spec, 'maxRetries', DEFAULTS.maxRetries, 0),
    backoffMs,
    backoffMaxMs,
    parkAfter: integer(spec, 'parkAfter', DEFAULTS.parkAfter, 1),
    // On by default where a crawl runs again: a resource with a schedule.
    conditional,
    shards,
    partitionBy: by as PartitionBy,
  };
}
