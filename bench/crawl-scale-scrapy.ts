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

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Child } from '#devcluster/child.js';
import { scrapyVersion, SPIDER, tail, type SpiderOutput } from './crawl.js';
import { sleep } from './load.js';

export interface ScrapyScaleRun {
  version: string;
  /** item_scraped_count: one item per page (the seed counts twice: its start request skips the duplicate filter). */
  pages: number;
  responses: number;
  /** elapsed_time_seconds. */
  seconds: number;
  pagesPerSecond: number;
  finishReason: string;
  /** From spawning python to its exit (interpreter and Scrapy start-up included). */
  wallSeconds: number;
}

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

const r2 = (x: number): number => Math.round(x * 100) / 100;

export async function runScrapyScale(o: ScrapyScaleOptions): Promise<ScrapyScaleRun | { error: string }> {
  const version = scrapyVersion(o.python);
  if (typeof version !== 'string') return version;
  const dir = mkdtempSync(join(tmpdir(), 'gaffer-bench-scrapy-scale-'));
  let keep = o.keepLogs;
  try {
    const statsFile = join(dir, 'stats.json');
    const logFile = join(dir, 'scrapy.log');
    const set = (k: string, v: string | number): string[] => ['-s', `${k}=${v}`];
    const polite = o.perHostRps > 0;
    const args = [
      '-m', 'scrapy', 'runspider', SPIDER, '-a', `seed=${o.seed}`, '-a', `stats=${statsFile}`, '-a', 'allowed=',
      ...set('ROBOTSTXT_OBEY', 'True'),
      ...set('CONCURRENT_REQUESTS', o.concurrency),
      ...set('CONCURRENT_REQUESTS_PER_DOMAIN', polite ? 1 : o.perHostConcurrency),
      ...set('DOWNLOAD_DELAY', polite ? 1 / o.perHostRps : 0),
      ...set('RANDOMIZE_DOWNLOAD_DELAY', 'False'),
      ...set('DEPTH_LIMIT', 0),
      // Breadth first, as gaffer crawls (see crawl.ts).
      ...set('DEPTH_PRIORITY', 1),
      ...set('SCHEDULER_DISK_QUEUE', 'scrapy.squeues.PickleFifoDiskQueue'),
      ...set('SCHEDULER_MEMORY_QUEUE', 'scrapy.squeues.FifoMemoryQueue'),
      ...set('AUTOTHROTTLE_ENABLED', 'False'),
      ...set('TELNETCONSOLE_ENABLED', 'False'),
      ...set('LOG_LEVEL', 'INFO'),
    ];
    const t0 = performance.now();
    const child = new Child({ name: 'scrapy', cmd: o.python, args, logFile }).start();
    const code = await Promise.race([child.exited(), sleep(o.deadlineMs).then(() => 'timeout' as const)]);
    const wallSeconds = r2((performance.now() - t0) / 1000);
    if (code === 'timeout') {
      await child.stop(2000);
      keep = true;
      return { error: `Scrapy did not finish within ${Math.round(o.deadlineMs / 1000)} s (log: ${logFile}):\n${tail(logFile)}` };
    }
    if (code !== 0 || !existsSync(statsFile)) {
      keep = true;
      return { error: `Scrapy exited ${code}${existsSync(statsFile) ? '' : ' without writing its stats'} (log: ${logFile}):\n${tail(logFile)}` };
    }
    const out = JSON.parse(readFileSync(statsFile, 'utf8')) as SpiderOutput;
    const num = (k: string): number => (typeof out.stats[k] === 'number' ? (out.stats[k] as number) : 0);
    const seconds = Math.round(num('elapsed_time_seconds') * 1000) / 1000;
    const pages = num('item_scraped_count');
    return {
      version: out.version,
      pages,
      responses: num('response_received_count'),
      seconds,
      pagesPerSecond: r2(pages / seconds),
      finishReason: String(out.stats.finish_reason ?? ''),
      wallSeconds,
    };
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}
