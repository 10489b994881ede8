// BenchConfig: what to run and how long, from the environment.
//   BENCH_QUICK=1                  a smoke run: tiny counts, short cells, one repetition
//   BENCH_ONLY=floors,add,...      run only these parts (floors, add, failover, scale, plan, crawl, profile)
//   BENCH_OUT=path                 where results.json goes (default bench/results.json)
//   BENCH_SCALE=n                  resources for the scale step (default 100000; quick 1000)
//   BENCH_KEEP_LOGS=1              keep every cluster's directory (logs) for a post-mortem
//   BENCH_PYTHON=path              the python that runs Scrapy in the crawl part (default /usr/bin/python3)
//   BENCH_PROFILE_INFLIGHT=n       the in-flight level the profile part runs (default the top level)
//   BENCH_MILLION_N=n              resources for the million part, run only when named (default 1000000; see bench/million.ts)
//   BENCH_CRAWL_SCALE_*            the crawl-scale part's sizes, run only when named (see crawlScaleConfig below and bench/crawl-scale.ts)

import { envNumber } from '#harness/env.js';
import { repoPath } from '#harness/runner.js';

export const SECTIONS = ['floors', 'add', 'failover', 'scale', 'plan', 'crawl', 'profile', 'million', 'crawl-scale'] as const;
/**
 * Parts that run only when BENCH_ONLY names them: the million part takes the
 * machine for most of an hour (bench/million.ts), the crawl-scale part about
 * 25 minutes (bench/crawl-scale.ts).
 */
const ON_REQUEST: ReadonlySet<string> = new Set(['million', 'crawl-scale']);
export type Section = (typeof SECTIONS)[number];

export interface BenchConfig {
  quick: boolean;
  only: Set<Section>;
  out: string;
  keepLogs: boolean;
  /** Lease TTL for every cluster (s). */
  ttlSeconds: number;
  /** Each load cell: warmup, then measure this long. */
  warmupMs: number;
  cellMs: number;
  /** In-flight levels of every cell. */
  levels: [number, number];
  /** The in-flight level the profile part runs. */
  profileInflight: number;
  /** Repetitions of each failover scenario; the median is reported. */
  reps: number;
  /** Resources on the worker that is killed. */
  workerKillResources: number;
  scale: { resources: number; workers: number; pools: number; inflight: number; limitMs: number; checkpoints: number[] };
  /**
   * Pages of the crawl part's site, how long each crawler may take, and the
   * python with Scrapy: Debian's python3-scrapy is under /usr/bin/python3,
   * and another python3 may come first on PATH.
   */
  crawl: { pages: number; deadlineMs: number; python: string };
  crawlScale: CrawlScaleConfig;
}

/**
 * The crawl-scale part's sizes (bench/crawl-scale.ts), each from its env:
 *   BENCH_CRAWL_SCALE_PAGES=200000        site pages of the no-delay crawls (3 shards, and 1 shard)
 *   BENCH_CRAWL_SCALE_ONE_PAGES=n         site pages of the one-shard crawl (default: PAGES)
 *   BENCH_CRAWL_SCALE_POLITE_PAGES=12000  site pages of the perHostRps 2 crawls, gaffer's and Scrapy's
 *                                         (at the 100 pages/s the limits allow, 200k would take 33 min)
 *   BENCH_CRAWL_SCALE_SCRAPY_PAGES=30000  site pages of Scrapy's no-delay crawl (Scrapy does about 200/s;
 *                                         capped at PAGES)
 *   BENCH_CRAWL_SCALE_SHARDS=3            shards (and workers) of the sharded crawls
 *   BENCH_CRAWL_SCALE_SEEN_URLS=1000000   URLs of the seen-set microbench (bench/seen-set.ts)
 */
export interface CrawlScaleConfig {
  pages: number;
  onePages: number;
  politePages: number;
  scrapyPages: number;
  shards: number;
  seenUrls: number;
  /** Hosts of the site (127.0.0.2 …) and the per-host limit of the polite cells. */
  hosts: number;
  politeRps: number;
  /** Requests in flight in all, and to one host, in the no-delay cells (gaffer splits the total over its shards). */
  concurrency: number;
  perHostConcurrency: number;
}

export function crawlScaleConfig(env: NodeJS.ProcessEnv, quick: boolean): CrawlScaleConfig {
  const n = (key: string, fallback: number, min = 1): number => envNumber(env, key, fallback, { min, whole: true });
  const pages = n('BENCH_CRAWL_SCALE_PAGES', quick ? 1500 : 200_000, 100);
  return {
    pages,
    onePages: n('BENCH_CRAWL_SCALE_ONE_PAGES', pages, 100),
    politePages: n('BENCH_CRAWL_SCALE_POLITE_PAGES', quick ? 300 : 12_000, 100),
    scrapyPages: Math.min(pages, n('BENCH_CRAWL_SCALE_SCRAPY_PAGES', quick ? 600 : 30_000, 100)),
    shards: n('BENCH_CRAWL_SCALE_SHARDS', 3, 1),
    seenUrls: n('BENCH_CRAWL_SCALE_SEEN_URLS', quick ? 100_000 : 1_000_000, 1000),
    hosts: 50,
    politeRps: 2,
    concurrency: 48,
    perHostConcurrency: 4,
  };
}

export function benchConfig(env: NodeJS.ProcessEnv = process.env): BenchConfig {
  const quick = env.BENCH_QUICK === '1';
  const only = new Set<Section>();
  for (const s of (env.BENCH_ONLY ?? '').split(',').map((x) => x.trim()).filter(Boolean)) {
    if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`BENCH_ONLY: unknown part "${s}"; known: ${SECTIONS.join(', ')}`);
    only.add(s as Section);
  }
  if (only.size === 0) for (const s of SECTIONS) if (!ON_REQUEST.has(s)) only.add(s);
  const resources = envNumber(env, 'BENCH_SCALE', quick ? 1000 : 100_000, { min: 10, whole: true });
  const workers = quick ? 10 : 100;
  const levels: [number, number] = [1, 64];
  const profileInflight = envNumber(env, 'BENCH_PROFILE_INFLIGHT', levels[1], { min: 1, whole: true });
  return {
    quick,
    only,
    out: env.BENCH_OUT ?? repoPath('bench', 'results.json'),
    keepLogs: env.BENCH_KEEP_LOGS === '1',
    ttlSeconds: 2,
    warmupMs: quick ? 200 : 500,
    cellMs: quick ? 400 : 4000,
    levels,
    profileInflight,
    reps: quick ? 1 : 3,
    workerKillResources: quick ? 200 : 1000,
    scale: {
      resources,
      workers,
      pools: quick ? 2 : 4,
      inflight: 128,
      limitMs: quick ? 30_000 : 180_000,
      checkpoints: [...new Set([100, 1000, 10_000, resources].filter((n) => n <= resources))].sort((a, b) => a - b),
    },
    crawl: { pages: quick ? 300 : 3000, deadlineMs: quick ? 120_000 : 300_000, python: env.BENCH_PYTHON || '/usr/bin/python3' },
    crawlScale: crawlScaleConfig(env, quick),
  };
}
