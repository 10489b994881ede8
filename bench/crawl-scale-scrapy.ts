// Scrapy on the crawl-scale part's 50-host site (bench/crawl-scale.ts): the
// same spider as the crawl part (crawl_spider.py, no item pipeline, breadth
// first), following links to every host, with either no delay or the same
// per-host limit as gaffer's polite cell. Scrapy keys its download slots by
// host name, so each of 127.0.0.2 … .51 is one slot, and
//   DOWNLOAD_DELAY = 1 / perHostRps, RANDOMIZE_DOWNLOAD_DELAY = False
//     (by default Scrapy waits 0.5 to 1.5 × the delay, which would let some
//     requests come faster than the limit), CONCURRENT_REQUESTS_PER_DOMAIN = 1
// is "at most perHostRps requests a second to a host"; AUTOTHROTTLE stays off
// so the limit is fixed. Time and pages: Scrapy's own stats.

import { runScrapy, type ScrapyRun } from './scrapy.js';

export type ScrapyScaleRun = ScrapyRun;

export interface ScrapyScaleOptions {
  python: string;
  seed: string;
  /** Requests in flight in all (CONCURRENT_REQUESTS) and to one host. */
  concurrency: number;
  perHostConcurrency: number;
  /** 0: no delay. */
  perHostRps: number;
  deadlineMs: number;
  keepLogs: boolean;
}

export async function runScrapyScale(o: ScrapyScaleOptions): Promise<ScrapyScaleRun | { error: string }> {
  const polite = o.perHostRps > 0;
  const r = await runScrapy({
    python: o.python,
    seed: o.seed,
    spiderArgs: { allowed: '' },
    settings: {
      ROBOTSTXT_OBEY: 'True',
      CONCURRENT_REQUESTS: o.concurrency,
      CONCURRENT_REQUESTS_PER_DOMAIN: polite ? 1 : o.perHostConcurrency,
      DOWNLOAD_DELAY: polite ? 1 / o.perHostRps : 0,
      RANDOMIZE_DOWNLOAD_DELAY: 'False',
      DEPTH_LIMIT: 0,
    },
    deadlineMs: o.deadlineMs,
    keepLogs: o.keepLogs,
  });
  return 'error' in r ? r : r.run;
}
