// The crawl-scale part as plain-text tables (bench/crawl-scale.ts).

import { numbersRight, table, type Cell } from '#lib/table.js';
import type { CrawlScaleResult, GafferScaleRun, ScrapyScaleCell } from './crawl-scale.js';

const mib = (b: number): string => (Number.isFinite(b) ? (b / 1048576).toFixed(1) : '-');
const kib = (b: number | undefined): string => (b !== undefined && Number.isFinite(b) ? String(Math.round(b / 1024)) : '-');

export function crawlScaleReport(c: CrawlScaleResult): string {
  const out: string[] = [];
  const k = c.config;
  out.push(`crawl-scale: the ${k.hosts}-host loopback site (127.0.0.2 …), links across hosts, robots.txt obeyed, no Crawl-delay, no 429s; ${k.concurrency} requests in flight in all (gaffer: split over its shards), ${k.perHostConcurrency} to one host without a delay, 1 with one`);
  const row = (name: string, r: GafferScaleRun | { error: string }): Cell[] =>
    'error' in r
      ? [name, null, null, null, null, null, null, null, `FAILED: ${r.error.split('\n')[0]}`]
      : [name, r.sitePages, r.pages, r.seconds, r.pagesPerSecond, r.stored, r.duplicates, r.busiestHostSecond, `wall ${r.wallSeconds} s${r.errors ? `; ${r.errors} errors` : ''}${r.parked.length ? `; parked ${r.parked.length}` : ''}`];
  const scrapyRow = (name: string, s: ScrapyScaleCell): Cell[] =>
    s.run
      ? [name, s.sitePages, s.run.pages, s.run.seconds, s.run.pagesPerSecond, null, s.duplicates, s.busiestHostSecond, `${s.run.finishReason}; wall ${s.run.wallSeconds} s`]
      : [name, s.sitePages, null, null, null, null, null, null, `not measured: ${(s.error ?? '').split('\n')[0]}`];
  const rows: Cell[][] = [
    row(`gaffer, ${k.shards} shards, no delay`, c.sharded),
    row('gaffer, 1 shard, no delay', c.oneShard),
    row(`gaffer, ${k.shards} shards, ${k.politeRps}/s per host`, c.polite),
    scrapyRow(`Scrapy, ${k.politeRps}/s per host`, c.scrapyPolite),
    scrapyRow('Scrapy, no delay', c.scrapy),
  ];
  out.push(table(['crawl', 'site pages', 'pages', 'seconds', 'pages/s', 'stored', 'dup fetches', 'max/host/s', ''], rows, { align: numbersRight(8), rule: true, missing: '-' }));

  const mem: Cell[][] = [];
  for (const [name, r] of [[`${k.shards} shards`, c.sharded], ['1 shard', c.oneShard], [`${k.shards} shards polite`, c.polite]] as const) {
    if ('error' in r) continue;
    const e = r.etcd;
    mem.push([
      name,
      r.workerPeakRss.map((w) => `${w.worker}${w.shards.length ? ` [${w.shards.join(',')}]` : ''} ${mib(w.bytes)}`).join(', '),
      `${kib(e.before.dbSize)} / ${kib(e.before.dbSizeInUse)}`,
      `${kib(e.after.dbSize)} / ${kib(e.after.dbSizeInUse)}`,
      kib(e.after.compacted?.dbSize),
    ]);
  }
  if (mem.length) {
    out.push(table(['cell', 'peak RSS per worker MiB [shards]', 'etcd before KiB (db / in use)', 'etcd after KiB', 'after compact+defrag KiB'], mem, { rule: true, missing: '-' }));
  }
  const s = c.seenSet;
  out.push('error' in s
    ? `seen set: FAILED: ${s.error}`
    : `seen set (bench/seen-set.ts) at ${s.urls} URLs: ${s.heapBytesPerUrl} heap bytes per URL, ${s.insertsPerSecond ?? '-'} inserts/s, collision probability ${s.collisionProbability?.toExponential(1) ?? '-'}`);
  const r = c.ratios;
  out.push(`ratios: polite ÷ limit (${c.politeLimit}/s) ${r.politeOfLimit ?? 'n/a'}; gaffer ÷ Scrapy polite ${r.vsScrapyPolite ?? 'n/a'}×, no delay ${r.vsScrapy ?? 'n/a'}×; ${k.shards} shards ÷ 1 shard ${r.shardedVsOne ?? 'n/a'}×`);
  for (const n of c.notes) out.push(`  note: ${n}`);
  return `${out.join('\n')}\n`;
}
