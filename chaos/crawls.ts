// Crawls: real work under chaos. A few crawl resources run at all times, each
// crawling its own loopback site; when one completes another starts. After
// the run the checker judges each finished crawl against the task runtime's
// promises:
//
//   result-lost          a page the crawl should have fetched has no result in the stream
//   result-duplicated    a page has more than one result in the stream
//   checkpoint-non-owner a checkpoint was written for an attempt that did not own the
//                        resource: its worker and attempt match neither the record
//                        committed with it nor the one just before (an attempt may
//                        checkpoint and be superseded in the same group commit)
//   crawl-unfinished     a crawl did not complete by the end of the run (a note, not a
//                        violation, when the run was cut short)

import type { NatsConnection } from 'nats';
import { startSite, type Site } from '#test/fixtures/site.js';
import { expect } from '#test/fixtures/crawl-expect.js';
import { readResults } from '#platform/nats/results.js';
import { keys } from '#protocol/keys.js';
import { decodeCheckpoint, decodeRecord } from '#protocol/stored.js';
import type { GafferClient } from '#client/client.js';
import type { EtcdStore } from '#platform/etcd/store.js';
import type { WatchEvent } from '#platform/ports.js';
import { sleep } from '#platform/clock.js';
import type { Workload } from './workload.js';

export interface CrawlFinding {
  kind: 'result-lost' | 'result-duplicated' | 'checkpoint-non-owner';
  name: string;
  detail: string;
}

export interface CrawlConfig {
  /** Crawls running at once. */
  concurrent: number;
  pages: number;
  perHostRps: number;
}

interface Crawl {
  name: string;
  site: Site;
  state: string;
}

const pathOf = (url: string): string => {
  const u = new URL(url);
  return u.pathname + u.search;
};

export class Crawls {
  private readonly all: Crawl[] = [];
  private stopping = false;
  private loop: Promise<void> = Promise.resolve();
  private n = 0;

  constructor(
    private readonly wl: Workload,
    private readonly client: GafferClient,
    private readonly cfg: CrawlConfig,
    private readonly log: (s: string) => void,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      const active = this.all.filter((c) => c.state !== 'completed' && c.state !== 'failed');
      for (let i = active.length; i < this.cfg.concurrent && !this.stopping; i++) await this.begin();
      for (const c of active) {
        try {
          c.state = (await this.client.get(c.name)).state;
        } catch {
          // The cluster is mid-fault; ask again next round.
        }
      }
      await sleep(1000);
    }
  }

  private async begin(): Promise<void> {
    const name = `crawl-${String(++this.n).padStart(2, '0')}`;
    const site = await startSite({ pages: this.cfg.pages, seed: this.n });
    const c: Crawl = { name, site, state: 'adding' };
    this.all.push(c);
    const rec = await this.wl.add(name, {
      kind: 'crawl', seeds: [site.seed], maxDepth: 100, maxPages: 10_000, perHostRps: this.cfg.perHostRps, concurrency: 4, timeoutMs: 1500,
    });
    if (rec.result !== 'ok') this.log(`${name}: add ended ${rec.result} (${rec.code ?? ''}); it may or may not exist`);
  }

  /** finish stops starting crawls and waits, up to timeoutMs, for the running ones to complete. */
  async finish(timeoutMs: number): Promise<string[]> {
    this.stopping = true;
    await this.loop;
    const deadline = Date.now() + timeoutMs;
    for (const c of this.all) {
      while (c.state !== 'completed' && c.state !== 'failed' && Date.now() < deadline) {
        try {
          c.state = (await this.client.get(c.name)).state;
        } catch {
          // keep asking until the deadline
        }
        if (c.state !== 'completed') await sleep(500);
      }
    }
    return this.all.filter((c) => c.state !== 'completed').map((c) => `${c.name} is ${c.state} at the end of the run`);
  }

  /** check judges every completed crawl; call after finish. */
  async check(nc: NatsConnection, store: EtcdStore): Promise<{ findings: CrawlFinding[]; crawls: number; pages: number }> {
    const findings: CrawlFinding[] = [];
    let pages = 0;
    for (const c of this.all.filter((x) => x.state === 'completed')) {
      const want = expect(c.site, { robots: true, maxDepth: 100 }).emitted;
      pages += want.size;
      const byPath = new Map<string, number>();
      for await (const r of readResults(nc, c.name)) {
        const p = pathOf((r.item as { url: string }).url);
        byPath.set(p, (byPath.get(p) ?? 0) + 1);
      }
      for (const p of want) if (!byPath.has(p)) findings.push({ kind: 'result-lost', name: c.name, detail: `no result for ${p}` });
      for (const [p, n] of byPath) if (n > 1) findings.push({ kind: 'result-duplicated', name: c.name, detail: `${n} results for ${p}` });
      findings.push(...(await checkpointOwners(store, c.name)));
    }
    return { findings, crawls: this.all.length, pages };
  }

  async close(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.all.map((c) => c.site.close().catch(() => undefined)));
  }
}

/** checkpointOwners replays every write of a crawl's checkpoint key and checks each against the assignment committed with it. */
async function checkpointOwners(store: EtcdStore, name: string): Promise<CrawlFinding[]> {
  const key = keys.checkpoint(name);
  const now = await store.range(key);
  const last = now.kvs.find((kv) => kv.key === key)?.modRevision;
  if (last === undefined) return [];
  const puts = await history(store, key, last);
  const out: CrawlFinding[] = [];
  for (const ev of puts) {
    const cp = decodeCheckpoint(ev.kv.value);
    const at = ev.kv.modRevision;
    const owner = async (rev: number) => {
      const recKv = (await store.range(keys.resource(name), rev)).kvs.find((kv) => kv.key === keys.resource(name));
      const d = recKv && decodeRecord(recKv.value);
      const rec = d?.rec;
      // During a handoff the old owner still owns its attempt (it may save a last checkpoint before it stops).
      if (d?.handoff && rec?.id === cp.id && d.handoff.worker === cp.worker && d.handoff.attempt === cp.attempt) return { rec, ok: true };
      const assigned = (await store.range(keys.assignment(cp.worker, name), rev)).kvs.some((kv) => kv.key === keys.assignment(cp.worker, name));
      return { rec, ok: !!rec && rec.id === cp.id && rec.worker === cp.worker && rec.attempt === cp.attempt && assigned };
    };
    const now = await owner(at);
    if (now.ok || (await owner(at - 1)).ok) continue;
    out.push({
      kind: 'checkpoint-non-owner',
      name,
      detail: `checkpoint at revision ${at} by ${cp.worker} attempt ${cp.attempt}; committed owner then: ${now.rec ? `${now.rec.worker} attempt ${now.rec.attempt}` : 'none'}`,
    });
  }
  return out;
}

/** history collects every put of one key from the first revision up to `last`, from etcd's own history. */
function history(store: EtcdStore, key: string, last: number): Promise<WatchEvent[]> {
  return new Promise((resolve, reject) => {
    const out: WatchEvent[] = [];
    const w = store.watch(
      key,
      1,
      (events) => {
        for (const e of events) if (e.kv.key === key && e.type === 'put') out.push(e);
        if (events.some((e) => e.kv.modRevision >= last)) {
          void w.close();
          resolve(out);
        }
      },
      reject,
    );
  });
}
