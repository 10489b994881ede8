// Running Scrapy, the peer both crawl parts measure against: its version, one
// run of bench/crawl_spider.py with the settings both share (breadth first,
// no autothrottle, no telnet console) and each part's own, its stats read
// back, and what went wrong said with the tail of its log.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Child } from '#devcluster/child.js';
import { sleep } from './load.js';

const SPIDER = fileURLToPath(new URL('../../bench/crawl_spider.py', import.meta.url));

/** What one Scrapy run measured, from its own stats. */
export interface ScrapyRun {
  version: string;
  /** item_scraped_count: one item per page. */
  pages: number;
  /** response_received_count: robots.txt included. */
  responses: number;
  /** elapsed_time_seconds. */
  seconds: number;
  pagesPerSecond: number;
  finishReason: string;
  /** From spawning python to its exit (interpreter and Scrapy start-up included). */
  wallSeconds: number;
}

export interface ScrapyOptions {
  python: string;
  seed: string;
  /** Spider arguments beyond seed and stats (-a k=v). */
  spiderArgs?: Record<string, string>;
  /** Scrapy settings beyond the shared ones (-s k=v). */
  settings: Record<string, string | number | boolean>;
  deadlineMs: number;
  keepLogs: boolean;
}

interface SpiderOutput {
  version: string;
  stats: Record<string, unknown>;
  found: string[];
}

const r2 = (x: number): number => Math.round(x * 100) / 100;

export function scrapyVersion(python: string): string | { error: string } {
  try {
    return execFileSync(python, ['-c', 'import scrapy; print(scrapy.__version__)'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 }).trim();
  } catch (err) {
    const why = ((err as { stderr?: string }).stderr ?? '').trim().split('\n').at(-1) || (err as Error).message;
    return { error: `python3-scrapy is not installed (${python} -c "import scrapy": ${why}); as root: apt-get install -y python3-scrapy` };
  }
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * runScrapy runs the spider once; with the run, the pages it found and a
 * reader of any other stat. Its logs are kept when asked, or when it failed.
 */
export async function runScrapy(o: ScrapyOptions): Promise<{ run: ScrapyRun; found: string[]; stat: (k: string) => number } | { error: string }> {
  const version = scrapyVersion(o.python);
  if (typeof version !== 'string') return version;
  const dir = mkdtempSync(join(tmpdir(), 'gaffer-bench-scrapy-'));
  let keep = o.keepLogs;
  try {
    const statsFile = join(dir, 'stats.json');
    const logFile = join(dir, 'scrapy.log');
    const settings: Record<string, string | number | boolean> = {
      ...o.settings,
      // Breadth first, as gaffer crawls (Scrapy's FAQ settings). Scrapy's default
      // is depth first: a page first reached down a long chain counts as deep,
      // and pages only linked from pages at the depth limit are never fetched,
      // so the two would not crawl the same pages.
      DEPTH_PRIORITY: 1,
      SCHEDULER_DISK_QUEUE: 'scrapy.squeues.PickleFifoDiskQueue',
      SCHEDULER_MEMORY_QUEUE: 'scrapy.squeues.FifoMemoryQueue',
      AUTOTHROTTLE_ENABLED: 'False',
      TELNETCONSOLE_ENABLED: 'False',
      LOG_LEVEL: 'INFO',
    };
    const args = [
      '-m', 'scrapy', 'runspider', SPIDER, '-a', `seed=${o.seed}`, '-a', `stats=${statsFile}`,
      ...Object.entries(o.spiderArgs ?? {}).flatMap(([k, v]) => ['-a', `${k}=${v}`]),
      ...Object.entries(settings).flatMap(([k, v]) => ['-s', `${k}=${v}`]),
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
    const stat = (k: string): number => (typeof out.stats[k] === 'number' ? (out.stats[k] as number) : 0);
    const seconds = Math.round(stat('elapsed_time_seconds') * 1000) / 1000;
    const pages = stat('item_scraped_count');
    const run: ScrapyRun = {
      version: out.version,
      pages,
      responses: stat('response_received_count'),
      seconds,
      pagesPerSecond: r2(pages / seconds),
      finishReason: String(out.stats.finish_reason ?? ''),
      wallSeconds,
    };
    return { run, found: out.found, stat };
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}
