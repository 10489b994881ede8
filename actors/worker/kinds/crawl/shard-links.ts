// Where a sharded crawl's URLs go: each to the queue of the shard that owns
// its host (partition.ts), with the URL's 64-bit hash as its id, so the
// stream's duplicate window stores a link found on many pages once. Seeds
// (and their sitemaps' URLs) start the crawl through the same path, so a
// shard's own links and another shard's are handled alike.

import type { TaskContext } from '#kinds/api.js';
import type { Fetcher } from './fetch.js';
import { canonicalize } from './frontier.js';
import { shardOf, urlId } from './partition.js';
import type { RobotsCache } from './robots.js';
import { SeenSet } from './seen-set.js';
import { readSitemaps } from './sitemaps.js';
import type { CrawlSpec } from './spec.js';
import type { UrlFilter } from './url-filter.js';

export class ShardLinks {
  /** URLs this attempt sent already (to any shard): each is sent once per attempt. */
  private readonly sent = new SeenSet();

  constructor(
    private readonly ctx: TaskContext,
    private readonly spec: CrawlSpec,
    /** The shard's seen-set: a link of its own already seen is not sent. */
    private readonly seen: SeenSet,
    private readonly filter: UrlFilter,
    /** Counts a link the spec rules out as skipped. */
    private readonly skip: (url: string) => void,
    /** Notes a URL about to be sent (the sent log and the receipts it waits for). */
    private readonly sending: (to: number, url: string, depth: number) => void,
  ) {}

  owner(url: string): number {
    return shardOf(url, this.spec.partitionBy, this.ctx.shard.count);
  }

  /** send sends each link not sent or seen before to its owner's queue; seeds go even if this attempt saw them (the queue dedupes). */
  send(links: readonly string[], depth: number, seeds = false): Array<Promise<void>> {
    const out: Array<Promise<void>> = [];
    for (const url of links) {
      if (!seeds && this.filter.filtered(url, depth)) {
        this.skip(url);
        continue;
      }
      const to = this.owner(url);
      if (to === this.ctx.shard.index && this.seen.has(url)) continue;
      if (!this.sent.add(url) && !seeds) continue;
      this.sending(to, url, depth);
      out.push(this.ctx.send(to, { u: url, d: depth }, { id: urlId(url) }));
    }
    return out;
  }

  /** seed sends this shard's seeds (and, with sitemaps, their sitemaps' URLs) to its own queue. */
  async seed(robots: RobotsCache, fetcher: Fetcher, signal: AbortSignal): Promise<void> {
    const mine = this.spec.seeds.map((s) => canonicalize(s)!).filter((s) => this.owner(s) === this.ctx.shard.index);
    await Promise.all(this.send(mine, 0, true));
    if (!this.spec.sitemaps) return;
    for (const origin of new Set(mine.map((s) => new URL(s).origin))) {
      if (signal.aborted) return;
      await robots.load(origin);
      const info = robots.info(origin);
      const roots = info.sitemaps.length > 0 ? info.sitemaps : [`${origin}/sitemap.xml`];
      const sends: Array<Promise<void>> = [];
      await readSitemaps(fetcher, roots, signal, this.ctx.log, (urls) => void sends.push(...this.send(urls, 0, true)));
      await Promise.all(sends);
    }
  }
}
