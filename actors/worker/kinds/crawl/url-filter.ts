// Which URLs a crawl leaves alone: the spec's filters (sameHost, include,
// exclude, maxDepth), parked hosts and robots.txt. One rule for the
// unsharded crawl (index.ts) and the sharded one (sharded.ts), so the two
// skip exactly the same URLs.

import { canonicalize } from './frontier.js';
import type { HostHealth } from './host-health.js';
import { hostOf } from './host-queues.js';
import type { RobotsCache } from './robots.js';
import type { CrawlSpec } from './spec.js';

export class UrlFilter {
  private readonly seedHosts = new Set<string>();

  constructor(
    private readonly spec: CrawlSpec,
    private readonly health: HostHealth,
    private readonly robots: RobotsCache,
  ) {
    for (const s of spec.seeds) this.seedHosts.add(new URL(canonicalize(s)!).host);
  }

  /** refused: the spec's filters, a parked host, or a cached robots.txt rule out `url`. */
  refused(url: string): boolean {
    return this.refusal(url) !== undefined;
  }

  /** refusal says why `url` is ruled out (as refused does), or undefined when it is not. */
  refusal(url: string): 'filtered' | 'parked' | 'robots' | undefined {
    const host = hostOf(url);
    if (this.bySpec(url, host)) return 'filtered';
    if (this.health.isParked(host)) return 'parked';
    return this.spec.obeyRobots && this.robots.allowedNow(url) === false ? 'robots' : undefined;
  }

  /** filtered: ruled out by what every shard knows (depth, sameHost, include/exclude), so not worth sending. */
  filtered(url: string, depth: number): boolean {
    return depth > this.spec.maxDepth || this.bySpec(url);
  }

  private bySpec(url: string, host?: string): boolean {
    const { sameHost, include, exclude } = this.spec;
    if (sameHost && !this.seedHosts.has(host ?? hostOf(url))) return true;
    if (include.length > 0 && !include.some((r) => r.test(url))) return true;
    return exclude.some((r) => r.test(url));
  }
}
