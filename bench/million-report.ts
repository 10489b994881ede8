// The million part as plain-text tables: each figure beside its target.

import { numbersRight, table } from '#lib/table.js';
import { fencingTiming } from '#platform/etcd/lease.js';
import type { MillionResult } from './million.js';

const mib = (b: number) => (Number.isFinite(b) ? `${Math.round(b / 1048576)} MiB` : '-');
const verdict = (ok: boolean | undefined) => (ok === undefined ? '-' : ok ? 'met' : 'MISSED');

export function millionReport(m: MillionResult): string {
  const a = m.apply;
  const rows: Array<[string, string, string, string]> = [
    ['apply -> all running', `${a.ratePerSec}/s`, '≥ 4000/s (C1M 3750/s)', verdict(Number.isFinite(a.ratePerSec) ? a.ratePerSec >= 4000 : undefined)],
    ['CPU per resource, all processes', `${a.cpuMsPerResource} ms (${a.cpuMsPerResourceAboveIdle} above idle)`, '-', '-'],
    ['leader heap per resource (after GC)', `${m.memory.bytesPerResource} B`, '≤ 600 B', verdict(m.memory.bytesPerResource <= 600)],
    ['takeover after leader SIGKILL', `${m.takeover?.servedMs ?? '-'} ms`, '≤ 2000 ms', verdict(m.takeover?.servedMs === undefined ? undefined : m.takeover.servedMs <= 2000)],
    [`worker SIGKILL (${m.workerKill.resources} resources)`, `${m.workerKill.allRunningMs} ms (its fence window alone: ${fencingTiming(m.config.ttlSeconds).validityMs} ms)`, '≤ 1500 ms', verdict(Number.isFinite(m.workerKill.allRunningMs) ? m.workerKill.allRunningMs <= 1500 : undefined)],
    ['single add p99, full ÷ empty', `${m.singleAdd.p99Ratio}× (${m.singleAdd.full.p99} / ${m.singleAdd.empty.p99} ms)`, '≤ 1.2×', verdict(Number.isFinite(m.singleAdd.p99Ratio) ? m.singleAdd.p99Ratio <= 1.2 : undefined)],
    ['list page of 1000 p99', `${m.listPage.p99} ms (p50 ${m.listPage.p50}, cold ${m.listPage.coldMs} ms; a get of one: p50 ${m.getOne?.p50 ?? '-'}, p99 ${m.getOne?.p99 ?? '-'} ms)`, '≤ 50 ms', verdict(Number.isFinite(m.listPage.p99) ? m.listPage.p99 <= 50 : undefined)],
    ['fleet: fences / leases lost', `${m.fleet.fences} / ${m.fleet.leasesLost}`, '0 / 0', verdict(m.fleet.fences === 0 && m.fleet.leasesLost === 0)],
  ];
  const c = m.config;
  return [
    `million: ${a.applied} resources (${a.refused} refused, ${a.failedRequests} failed requests) on ${c.workers} workers (${m.pools} pools of ${c.perPool}, one alone), ${a.files} files, ${c.inflight} in flight, TTL ${c.ttlSeconds} s, etcd compaction ${c.compaction}`,
    table(['million', 'value', 'target', 'status'], rows, { align: ['left', 'right', 'left', 'left'], rule: true }),
    table(
      ['memory and storage', 'value'],
      [
        ['leader heap after GC, empty -> full', `${mib(m.memory.heap0)} -> ${mib(m.memory.heapN)}`],
        ['leader RSS', mib(m.memory.leaderRss)],
        ['standby (follower) heap after GC / RSS', `${mib(m.memory.standby.heapUsed)} / ${mib(m.memory.standby.rss)}`],
        ['etcd db / in use', `${mib(m.etcd.dbSize)} / ${mib(m.etcd.dbSizeInUse)}`],
        ['etcd after compaction + defrag', m.etcd.compactError ? `failed: ${m.etcd.compactError}` : `${mib(m.etcd.compacted?.dbSize ?? NaN)} (${m.etcd.compacted?.ms ?? '-'} ms)`],
        ['etcd quota', mib(m.etcd.quotaBytes)],
        ['assign / event messages per resource', `${a.assignMsgsPerResource} / ${a.eventMsgsPerResource}`],
        ['idle cluster CPU, all processes', `${a.idleCpuMsPerSec} ms/s`],
      ],
      { align: numbersRight(2), rule: true },
    ),
    `CPU ms by process over the apply: ${Object.entries(a.cpuMsByProc).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    '',
  ].join('\n');
}
