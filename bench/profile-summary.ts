// Profile summary: self time from a V8 .cpuprofile (node --cpu-prof), by
// function and by where the code lives (gaffer file, npm package, node core,
// GC, idle).
//
//   node dist/bench/profile-summary.js some.cpuprofile [top] [fromMs toMs]

import { readFileSync } from 'node:fs';
import { isEntryPoint } from '#harness/runner.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Row {
  name: string;
  selfMs: number;
  /** Share of all sampled time, idle included. */
  pct: number;
  /** Share of busy time (idle excluded). */
  busyPct: number;
}
export interface ProfileSummary {
  /** The part of the profile summarised, in ms from its start (all of it when absent). */
  window?: { fromMs: number; toMs: number };
  wallMs: number;
  busyMs: number;
  idleMs: number;
  topFunctions: Row[];
  byWhere: Row[];
}

const SPECIAL = new Set(['(garbage collector)', '(program)', '(idle)', '(root)']);

/** where names the place a function lives: a gaffer file, an npm package, node core or a V8 pseudo-frame. */
export function where(cf: CallFrame): string {
  if (SPECIAL.has(cf.functionName) && !cf.url) return cf.functionName;
  const url = cf.url;
  if (!url) return '(native)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + '/node_modules/'.length).split('/');
    return `npm ${parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]}`;
  }
  if (url.startsWith('node:')) return 'node core';
  const m = /\/dist\/((?:src|actors|bench)\/.*)$/.exec(url);
  if (m) return `gaffer ${m[1]}`;
  return url;
}

function label(cf: CallFrame): string {
  if (SPECIAL.has(cf.functionName) && !cf.url) return cf.functionName;
  const file = cf.url ? cf.url.replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, '').replace(/^file:\/\//, '') : '(native)';
  return `${cf.functionName || '(anonymous)'} ${file}:${cf.lineNumber + 1}`;
}

/** summarize aggregates self time; with a window, only samples taken that many ms after the profile started. */
export function summarize(p: CpuProfile, top = 20, window?: { fromMs: number; toMs: number }): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const self = new Map<string, number>();
  const place = new Map<string, number>();
  let idle = 0;
  let total = 0;
  let t = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!);
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    t += dt;
    if (!n || (window && (t < window.fromMs || t > window.toMs))) continue;
    total += dt;
    if (n.callFrame.functionName === '(idle)') idle += dt;
    const l = label(n.callFrame);
    self.set(l, (self.get(l) ?? 0) + dt);
    const w = where(n.callFrame);
    place.set(w, (place.get(w) ?? 0) + dt);
  }
  const busy = total - idle;
  const rows = (m: Map<string, number>, k: number): Row[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([name, ms]) => ({
        name,
        selfMs: Math.round(ms * 10) / 10,
        pct: total > 0 ? Math.round((ms / total) * 1000) / 10 : 0,
        busyPct: busy > 0 && name !== '(idle)' ? Math.round((ms / busy) * 1000) / 10 : 0,
      }));
  return {
    ...(window ? { window } : {}),
    wallMs: window ? Math.round(window.toMs - window.fromMs) : Math.round((p.endTime - p.startTime) / 1000),
    busyMs: Math.round(busy),
    idleMs: Math.round(idle),
    topFunctions: rows(self, top),
    byWhere: rows(place, 15),
  };
}

export function summarizeFile(path: string, top = 20, window?: { fromMs: number; toMs: number }): ProfileSummary {
  return summarize(JSON.parse(readFileSync(path, 'utf8')) as CpuProfile, top, window);
}

export function formatSummary(s: ProfileSummary): string {
  const line = (r: Row) => `  ${r.selfMs.toFixed(1).padStart(9)} ms ${r.pct.toFixed(1).padStart(5)}% ${r.busyPct.toFixed(1).padStart(5)}%busy  ${r.name}`;
  return [
    `profile${s.window ? ` from ${s.window.fromMs} to ${s.window.toMs} ms after start` : ''}: ${s.wallMs} ms wall, ${s.busyMs} ms busy, ${s.idleMs} ms idle`,
    'self time by place:',
    ...s.byWhere.map(line),
    'top functions by self time:',
    ...s.topFunctions.map(line),
  ].join('\n');
}

if (isEntryPoint(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/bench/profile-summary.js <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const [from, to] = [process.argv[4], process.argv[5]];
  const window = from !== undefined && to !== undefined ? { fromMs: Number(from), toMs: Number(to) } : undefined;
  process.stdout.write(`${formatSummary(summarizeFile(file, Number(process.argv[3] ?? 25), window))}\n`);
}
