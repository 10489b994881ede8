// Seen-set microbench: heap bytes per URL and inserts/s for the crawl's
// exact seen set (actors/worker/kinds/crawl/seen-set.ts) at 1M URLs.
//   node dist/bench/seen-set.js [count]
// Heap is measured as V8 heap plus array buffers, after a full GC, before
// and after the inserts; the URLs are generated on the fly and not kept.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { performance } from 'node:perf_hooks';
import { SeenSet } from '#actors/worker/kinds/crawl/seen-set.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const used = (): number => {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

const n = Number(process.argv[2] ?? 1_000_000);
const url = (i: number): string => `https://host-${i % 5000}.example.com/catalog/item-${i}?page=${i % 13}`;

const before = used();
const set = new SeenSet();
let t = performance.now();
for (let i = 0; i < n; i++) set.add(url(i));
const insertMs = performance.now() - t;
const after = used();
t = performance.now();
let hits = 0;
for (let i = 0; i < n; i++) if (set.has(url(i))) hits++;
const lookupMs = performance.now() - t;
if (hits !== n || set.size !== n) throw new Error(`seen set lost URLs: size ${set.size}, hits ${hits} of ${n}`);
t = performance.now();
const bytes = set.serialize();
const serializeMs = performance.now() - t;

const report = {
  urls: n,
  heapBytesPerUrl: Math.round(((after - before) / n) * 10) / 10,
  tableBytesPerUrl: Math.round((set.heapBytes / n) * 10) / 10,
  insertsPerSecond: Math.round(n / (insertMs / 1000)),
  lookupsPerSecond: Math.round(n / (lookupMs / 1000)),
  serializedBytesPerUrl: Math.round((bytes.length / n) * 100) / 100,
  serializeMs: Math.round(serializeMs),
  collisionProbability: (n * n) / 2 ** 65,
};
console.log(JSON.stringify(report, null, 2));
if (report.heapBytesPerUrl > 64) {
  console.error(`over budget: ${report.heapBytesPerUrl} heap bytes per URL (limit 64)`);
  process.exitCode = 1;
}
