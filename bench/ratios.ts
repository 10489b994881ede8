// Ratios: every gaffer number against the floors of the same run, and every
// target marked MET or MISSED with by how much. A target whose inputs were
// not measured (a part skipped or failed) is "n/a".

import type { AddResult } from './add.js';
import type { CrawlBenchResult } from './crawl.js';
import type { CrawlScaleResult } from './crawl-scale.js';
import type { FailoverResult } from './failover.js';
import type { FloorsResult } from './floors.js';
import type { Cell } from './load.js';
import type { ScaleResult } from './scale.js';

export interface Parts {
  floors?: FloorsResult;
  add?: AddResult;
  failover?: FailoverResult;
  scale?: ScaleResult;
  crawl?: CrawlBenchResult;
  crawlScale?: CrawlScaleResult;
}

export interface Verdict {
  id: string;
  what: string;
  value: number | null;
  unit: string;
  target: string;
  status: 'MET' | 'MISSED' | 'n/a';
  by: string;
}

/** VsFloors puts one cell next to the floors at the same in-flight level. */
export interface VsFloors {
  cell: string;
  throughputVsEcho: number | null;
  throughputVsHop: number | null;
  throughputVsSerialized: number | null;
  p50VsEcho: number | null;
  p99MinusEchoMs: number | null;
}

const fin = (x: number | undefined): x is number => typeof x === 'number' && Number.isFinite(x);
const r2 = (x: number): number => Math.round(x * 100) / 100;
const ratio = (a: number | undefined, b: number | undefined): number | null => (fin(a) && fin(b) && b !== 0 ? r2(a / b) : null);

export function vsFloors(p: Parts): VsFloors[] {
  const out: VsFloors[] = [];
  const f = p.floors;
  const one = (name: string, c: Cell | undefined, level: string) => {
    if (!c) return;
    out.push({
      cell: name,
      throughputVsEcho: ratio(c.throughput, f?.echo[level]?.throughput),
      throughputVsHop: ratio(c.throughput, f?.hop[level]?.throughput),
      throughputVsSerialized: ratio(c.throughput, f?.serialized[level]?.throughput),
      p50VsEcho: ratio(c.p50, f?.echo[level]?.p50),
      p99MinusEchoMs: fin(c.p99) && fin(f?.echo[level]?.p99) ? r2(c.p99 - f!.echo[level]!.p99) : null,
    });
  };
  for (const level of Object.keys(f?.hop ?? {})) one(`floor hop@${level}`, f?.hop[level], level);
  for (const level of Object.keys(f?.serialized ?? {})) one(`floor serialized@${level}`, f?.serialized[level], level);
  for (const via of ['follower', 'leader'] as const) {
    for (const level of Object.keys(p.add?.[via] ?? {})) one(`add via ${via}@${level}`, p.add?.[via][level], level);
  }
  return out;
}

function atLeast(id: string, what: string, value: number | null | undefined, min: number, unit: string): Verdict {
  if (!fin(value ?? undefined)) return { id, what, value: null, unit, target: `≥ ${min}${unit}`, status: 'n/a', by: 'not measured' };
  const v = value as number;
  const ok = v >= min;
  return {
    id, what, value: r2(v), unit, target: `≥ ${min}${unit}`,
    status: ok ? 'MET' : 'MISSED',
    by: ok ? `${r2(v / min)}× the target` : `short by ${r2(min - v)}${unit} (needs ${r2(min / v)}× more)`,
  };
}

function atMost(id: string, what: string, value: number | null | undefined, max: number | null, unit: string, targetText?: string): Verdict {
  const target = targetText ?? `≤ ${max === null ? '?' : r2(max)} ${unit}`;
  if (!fin(value ?? undefined) || max === null || !fin(max)) return { id, what, value: fin(value ?? undefined) ? r2(value as number) : null, unit, target, status: 'n/a', by: 'not measured' };
  const v = value as number;
  const ok = v <= max;
  return {
    id, what, value: r2(v), unit, target,
    status: ok ? 'MET' : 'MISSED',
    by: ok ? `under by ${r2(max - v)} ${unit}` : `over by ${r2(v - max)} ${unit} (${r2(v / max)}× the limit)`,
  };
}

export function verdicts(p: Parts): Verdict[] {
  const f = p.floors;
  const a = p.add;
  const echo64 = f?.echo['64']?.throughput;
  // The add path's targets as issue 21 reworded them from the measured floors
  // (the one-request-per-resource path cannot beat a serialized commit by much
  // on this design): judged for the plain client and for the typed one.
  const out: Verdict[] = [];
  const s99 = f?.serialized['1']?.p99;
  const limit = fin(s99) ? s99 + 2 : null;
  const limitText = limit === null ? '≤ serialized@1 p99 + 2 ms' : `≤ ${r2(limit)} ms (serialized@1 p99 ${s99} + 2)`;
  for (const [client, cells] of [['plain', a?.follower], ['typed', a?.typed]] as const) {
    out.push(atLeast(`add64-vs-echo64-${client}`, `add via follower @64 throughput (${client} client) ÷ echo @64 throughput`, ratio(cells?.['64']?.throughput, echo64), 0.25, '×'));
    out.push(atMost(`add1-p99-${client}`, `add via follower @1 p99 (${client} client)`, cells?.['1']?.p99, limit, 'ms', limitText));
  }
  out.push(atMost('leader-sigkill', 'leader SIGKILL -> first successful add (median)', p.failover?.leaderSigkill.medianMs, 1000, 'ms'));
  out.push(atMost('leader-sigterm', 'leader SIGTERM -> first successful add (median)', p.failover?.leaderSigterm.medianMs, 200, 'ms'));
  const wk = p.failover?.workerSigkill;
  out.push(atMost('worker-sigkill', `worker SIGKILL with ${wk?.runs[0]?.resources ?? 1000} -> all running elsewhere (median)`, wk?.medianMs, 1500, 'ms'));
  const s = p.scale;
  const at = s ? (s.reachedTarget ? `${s.added}` : `${s.added} of ${s.target}`) : '100000';
  for (const t of s?.takeover ?? [{ signal: 'SIGTERM' }, { signal: 'SIGKILL' }] as Array<{ signal: string; servedMs?: number; error?: string }>) {
    const v = atMost(`takeover-${t.signal.toLowerCase()}`, `takeover at ${at} resources after leader ${t.signal} -> first successful add`, t.servedMs, 2000, 'ms');
    if (t.error) v.by = v.status === 'n/a' ? t.error : `${v.by}; ${t.error}`;
    out.push(v);
  }
  out.push(atMost('leader-memory', `leader memory per resource (heap after GC at ${at}, dedupe window excluded)`, s?.memory.bytesPerResource, 1024, 'B'));
  const c = p.crawl;
  const cv = atLeast('crawl-vs-scrapy', `crawl of a ${c?.site.pages ?? 3000}-page local site, pages/s: gaffer (1 worker, every page in JetStream) ÷ Scrapy (no pipeline)`, c?.ratio, 1, '×');
  if (c && 'error' in c.scrapy && cv.status === 'n/a') cv.by = `Scrapy: ${c.scrapy.error.split(/[\n;]/)[0]}`;
  out.push(cv);
  if (p.crawlScale) out.push(...crawlScaleVerdicts(p.crawlScale));
  return out;
}

/** The crawl-scale part's targets (issue 20 §3); only when the part ran, since it runs only when named. */
function crawlScaleVerdicts(c: CrawlScaleResult): Verdict[] {
  const k = c.config;
  const r = c.ratios;
  const s = 'error' in c.sharded ? undefined : c.sharded;
  const out = [
    atLeast('crawl-scale-polite', `${k.politePages}-page crawl at ${k.politeRps}/s per host, ${k.shards} shards: pages/s ÷ the ${c.politeLimit}/s the limits allow`, r.politeOfLimit, 0.9, '×'),
    atLeast('crawl-scale-vs-scrapy-polite', `the same, gaffer ÷ Scrapy with the same per-host limit (pages/s)`, r.vsScrapyPolite, 1, '×'),
    atLeast('crawl-scale-vs-scrapy', `no delay: gaffer ${k.shards} shards (${k.pages} pages) ÷ Scrapy (${k.scrapyPages} pages), pages/s`, r.vsScrapy, 3, '×'),
    atLeast('crawl-scale-shards-vs-one', `no delay: ${k.shards} shards ÷ 1 shard on this machine (pages/s)`, r.shardedVsOne, 0.9, '×'),
    atMost('crawl-scale-duplicates', `${k.pages}-page crawl: pages fetched more than once (the site's per-page counts)`, s?.duplicates, 0, 'pages'),
    atMost('crawl-scale-stored', `${k.pages}-page crawl: |results stored − pages|`, s && Math.abs(s.stored - s.pages), 0, 'results'),
    atMost('crawl-scale-etcd', `${k.pages}-page crawl: etcd live data growth (after compact+defrag − before)`, s && ((s.etcd.after.compacted?.dbSize ?? NaN) - s.etcd.before.dbSize) / 1024, 1024, 'KiB'),
  ];
  const seen = 'error' in c.seenSet ? undefined : c.seenSet;
  out.push(atMost('crawl-scale-seen-set', `seen set: heap bytes per URL at ${seen?.urls ?? k.seenUrls} URLs`, seen?.heapBytesPerUrl, 64, 'B'));
  return out;
}
