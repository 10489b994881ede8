// Report: the results as plain-text tables.

import type { Cell as LoadCell } from './load.js';
import { numbersRight, table as printTable, type Cell } from '#lib/table.js';
import { ok, type Results } from './results.js';
import { formatSummary } from './profile-summary.js';
import { millionReport } from './million-report.js';
import { crawlScaleReport } from './crawl-scale-report.js';

function table(head: string[], rows: Cell[][]): string {
  return printTable(head, rows, { align: numbersRight(head.length), rule: true, missing: '-' });
}

const cellRow = (name: string, c: LoadCell | undefined) =>
  c ? [name, c.throughput, c.cpuMsPerOp ?? null, c.p50, c.p99, c.p999, c.ok, c.errors] : [name, null, null, null, null, null, null, null];

export function report(r: Results): string {
  const out: string[] = [];
  const m = r.meta;
  out.push(`gaffer bench ${m.startedAt}  ${m.quick ? 'QUICK ' : ''}commit ${m.commit}${m.dirty ? ' + uncommitted changes in src/ actors/' : ''}  node ${m.node}  ${m.cpus} cpus  load avg at start ${m.loadavg.join(' ')}`);
  out.push('Noisy machine: other work ran alongside; compare ratios within this run, not absolute numbers across runs.\n');

  const rows: Array<Array<string | number | null>> = [];
  const f = ok(r.floors);
  if (f) {
    for (const k of ['echo', 'hop', 'serialized'] as const) for (const l of Object.keys(f[k])) rows.push(cellRow(`floor ${k}@${l}`, f[k][l]));
  }
  const a = ok(r.add);
  if (a) {
    for (const v of ['follower', 'typed', 'leader'] as const) for (const l of Object.keys(a[v] ?? {})) rows.push(cellRow(addCellName(v, l), a[v][l]));
  }
  if (rows.length) out.push(table(['cell', 'req/s', 'gaffer CPU ms/req', 'p50 ms', 'p99 ms', 'p99.9 ms', 'samples', 'errors'], rows), '');

  const cpuCells: Array<[string, LoadCell | undefined]> = [];
  if (f) for (const k of ['echo', 'hop', 'serialized'] as const) for (const l of Object.keys(f[k])) cpuCells.push([`floor ${k}@${l}`, f[k][l]]);
  if (a) for (const v of ['follower', 'typed', 'leader'] as const) for (const l of Object.keys(a[v] ?? {})) cpuCells.push([addCellName(v, l), a[v][l]]);
  const procs = [...new Set(cpuCells.flatMap(([, c]) => Object.keys(c?.cpu ?? {})))];
  if (procs.length) {
    out.push(table([`CPU % of one core (${m.cpus * 100} = all)`, ...procs], cpuCells.map(([n, c]) => [n, ...procs.map((p) => c?.cpu?.[p])])), '');
  }

  if (r.vsFloors.length) {
    out.push(table(
      ['vs floors (same in-flight)', 'tput/echo', 'tput/hop', 'tput/serial', 'p50/echo', 'p99-echo ms'],
      r.vsFloors.map((v) => [v.cell, v.throughputVsEcho, v.throughputVsHop, v.throughputVsSerialized, v.p50VsEcho, v.p99MinusEchoMs]),
    ), '');
  }

  const fo = ok(r.failover);
  if (fo) {
    const j = (xs: Array<number | undefined>) => xs.map((x) => (typeof x === 'number' && Number.isFinite(x) ? x : '-')).join(' / ');
    const leaderRow = (name: string, sc: typeof fo.leaderSigkill) => [
      name, sc.medianMs, j(sc.runs.map((x) => x.servedMs)), j(sc.runs.map((x) => x.termEndMs)), j(sc.runs.map((x) => x.electedMs)),
      j(sc.runs.map((x) => x.anyMs)), j(sc.runs.map((x) => x.singleMs)), j(sc.runs.map((x) => x.worstMs)),
    ];
    out.push(table(
      [`failover, TTL ${fo.ttlSeconds} s (ms)`, 'median', 'runs', 'term end', 'elected evt', 'any success', 'single client', 'worst wait'],
      [leaderRow('leader SIGKILL -> new leader served', fo.leaderSigkill), leaderRow('leader SIGTERM -> new leader served', fo.leaderSigterm)],
    ));
    const w = fo.workerSigkill;
    out.push(table(
      ['(ms)', 'median', 'runs', 'worker.lost evt', 'polled'],
      [[`worker SIGKILL (${w.runs[0]?.resources ?? '?'} resources) -> all running elsewhere`, w.medianMs, j(w.runs.map((x) => x.allRunningMs)), j(w.runs.map((x) => x.lostMs)), j(w.runs.map((x) => x.verifiedMs))]],
    ), '');
  }

  const s = ok(r.scale);
  if (s) {
    out.push(`scale: ${s.added} of ${s.target} resources${s.reachedTarget ? '' : ' (NOT reached within the time bound)'} over ${s.workers} workers in ${s.pools} processes; workers up in ${s.workersUpMs} ms; fill ${s.fillMs} ms = ${s.addRate} adds/s at 128 in flight (${s.fillErrors} errors${s.fillFirstError ? `: ${s.fillFirstError}` : ''}); all running ${s.convergedMs} ms after the fill`);
    out.push(table(['checkpoint', 'fill ms', 'list ms', 'list bytes', 'leader RSS MiB', 'list error'], s.checkpoints.map((c) => [
      `${c.resources} resources`, c.atMs, c.list.ok ? c.list.ms : `FAIL ${c.list.ms}`, c.list.bytes, Math.round(c.leaderRssBytes / 1048576), c.list.error ?? '',
    ])));
    const m = s.memory;
    out.push(`leader ${m.leader} heap after GC ${Math.round(m.heap0 / 1048576)} MiB at 0 -> ${Math.round(m.heapN / 1048576)} MiB at ${s.added}: ${m.note ?? `${m.bytesPerResource} B/resource`}`);
    out.push(`  VmRSS ${Math.round(m.rss0 / 1048576)} -> ${Math.round(m.rssN / 1048576)} MiB (${m.rssBytesPerResource} B/resource, garbage included); dedupe window after the fill: ${m.dedupe.entries} entries, ${Math.round(m.dedupe.bytes / 1048576)} MiB (${m.dedupe.bytesPerEntry} B each), gone within 60 s`);
    out.push(table(['takeover (ms)', 'new leader served', 'term end', 'any success', 'single client', 'worst wait', 'elections', 'leader', 'state from', 'error'], s.takeover.map((t) => [
      `leader ${t.signal} at ${t.resources}`, t.servedMs, t.termEndMs, t.anyMs, t.singleMs, t.worstMs,
      t.elections === undefined ? null : `${t.elections} in ${Math.round(((t.servedMs ?? 0) + (t.observeMs ?? 0)) / 1000)} s`,
      t.killed ? `${t.killed} -> ${t.newLeader}` : null,
      t.built ? `${t.built.source}, built in ${t.built.buildMs} ms${t.built.readMs !== undefined ? ` after a ${t.built.readMs} ms read` : ''}` : null,
      t.error ?? t.firstError ?? '',
    ])));
    if (s.fleet) out.push(`fleet over the scale part: ${s.fleet.fences} worker incarnations fenced themselves, ${s.fleet.leasesLost} lost their lease (every task restarted)`);
    out.push('');
  }

  const pl = ok(r.plan);
  if (pl) {
    out.push(`plan (in process, no I/O): ${pl.lost} of ${pl.workers} workers lost (${pl.lostPerBatch} at a time), at ${pl.resources} resources: ${pl.batches} batches until done, median ${pl.medianMs} ms, longest ${pl.maxMs} ms; ${pl.pending} left pending (no room)`, '');
  }

  const c = ok(r.crawl);
  if (c) {
    const ru = c.rules;
    out.push(`crawl: ${c.site.pages}-page site on loopback (${c.site.expected} to find), same host, robots.txt obeyed, depth ${ru.maxDepth}, ${ru.concurrency} at a time, no delay`);
    const g = c.gaffer;
    const rows: Cell[][] = [['gaffer (1 worker, results in JetStream)', g.pages, g.seconds, g.pagesPerSecond, g.set.found, g.requests, `${g.stored} stored; wall ${g.wallSeconds} s`]];
    if ('error' in c.scrapy) rows.push(['Scrapy', null, null, null, null, null, 'not measured']);
    else {
      const s = c.scrapy;
      rows.push([`Scrapy ${s.version} (no pipeline)`, s.pages, s.seconds, s.pagesPerSecond, s.set.found, s.requests, `${s.finishReason}; wall ${s.wallSeconds} s`]);
    }
    // The last column is words: left-aligned.
    out.push(printTable(['crawler', 'pages', 'seconds', 'pages/s', 'found', 'requests', ''], rows, { align: numbersRight(6), rule: true, missing: '-' }));
    if ('error' in c.scrapy) out.push(`Scrapy: ${c.scrapy.error}`);
    out.push(`gaffer ÷ Scrapy: ${c.ratio === null ? 'n/a' : `${c.ratio}×`}${c.samePages === null ? '' : c.samePages ? '; both found the same pages' : '; NOT the same pages'}`);
    for (const n of c.notes) out.push(`  note: ${n}`);
    out.push('');
  }

  const cs = ok(r['crawl-scale']);
  if (cs) out.push(crawlScaleReport(cs));

  out.push(table(['target', 'value', 'target', 'status', 'by how much'], r.verdicts.map((v) => [v.what, v.value === null ? null : `${v.value} ${v.unit}`, v.target, v.status, v.by])), '');

  const p = ok(r.profile);
  if (p) out.push(`leader profile during add via follower@${p.cell.inflight} (${p.cell.throughput}/s under the profiler), ${p.file}:`, formatSummary(p.summary), '');

  const mil = ok(r.million);
  if (mil) out.push(millionReport(mil));

  for (const [k, v] of Object.entries(r)) {
    if (v && typeof v === 'object' && 'error' in v) out.push(`${k}: FAILED: ${(v as { error: string }).error}`);
    if (v && typeof v === 'object' && 'skipped' in v) out.push(`${k}: skipped`);
  }
  return out.join('\n');
}

/** addCellName: the follower cells are a plain NATS client's, the typed ones GafferClient's (also through the follower). */
function addCellName(via: 'follower' | 'typed' | 'leader', inflight: string): string {
  return via === 'typed' ? `add typed client@${inflight}` : `add via ${via}@${inflight}`;
}
