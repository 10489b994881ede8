// Which shard of a sharded crawl owns a URL: the one its partition key
// (host:port, or the registrable domain) hashes to. Every shard computes it
// the same way, in every process and after every restart, so each host is
// fetched by exactly one shard and politeness for it lives in one place
// (Nutch's partition.url.mode, StormCrawler's fields grouping on the host).
//
// The hash is the seen-set's (SHA-256 cut to 64 bits) reduced mod N: stable
// across Node versions and machines, and even enough that 50 hosts over 3
// shards land 13 to 20 per shard. Changing it (or N) on a crawl that has
// state moves hosts between shards; spec.shards is fixed for a resource's
// life, so only a code change could, and test/unit/crawl-partition.test.ts
// pins known values.

import { getDomain } from 'tldts';
import { hash64 } from './seen-set.js';

export type PartitionBy = 'host' | 'domain';
export const PARTITIONS: readonly PartitionBy[] = ['host', 'domain'];

/**
 * partitionKey is what a URL is routed by: its host:port, or with "domain"
 * its registrable domain (www.bbc.co.uk and news.bbc.co.uk: bbc.co.uk, per
 * the Public Suffix List through tldts). An IP address, localhost or any
 * name with no registrable domain falls back to host:port: tldts gives no
 * domain for them, and two ports of one IP are no more one site than two IPs.
 */
export function partitionKey(url: string, by: PartitionBy): string {
  const u = new URL(url);
  if (by === 'host') return u.host;
  return getDomain(u.hostname) ?? u.host;
}

/** shardOfKey maps a partition key to a shard index in [0, count). */
export function shardOfKey(key: string, count: number): number {
  if (count <= 1) return 0;
  const [hi, lo] = hash64(key);
  // (hi·2³² + lo) mod count without BigInt: 2³² mod count folded in.
  return ((hi % count) * (2 ** 32 % count) + (lo % count)) % count;
}

/** shardOf is the shard that owns `url`. */
export const shardOf = (url: string, by: PartitionBy, count: number): number => shardOfKey(partitionKey(url, by), count);

/** urlId is a URL's 64-bit hash in hex: the id of its queue items and of its result. */
export function urlId(url: string): string {
  const [hi, lo] = hash64(url);
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}
