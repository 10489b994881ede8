// robots.txt, fetched once per origin and cached for the crawl, read with
// robots-parser under the user-agent token `gaffer`. Failures follow RFC 9309:
// an unavailable robots.txt (4xx, or too many redirects) allows everything;
// an unreachable one (5xx, network error, timeout) disallows the whole origin
// for as long as it stays unreachable, since we cannot know what the site
// asked for. "For now", not for the crawl: each such answer counts as a
// failure of the host and is asked again after the host's back-off
// (RobotsPolicy), while the host's URLs wait; only a host parked after
// parkAfter failures in a row is disallowed whole, and the crawl reports it
// parked. A 429 or 503 is first waited out and tried again as a throttle.

import robotsParserModule from 'robots-parser';
import { canonicalize } from './frontier.js';
import type { Fetcher } from './fetch.js';

export const ROBOTS_AGENT = 'gaffer';
const MAX_ROBOTS_REDIRECTS = 5;

interface Rules {
  isAllowed(url: string, ua?: string): boolean | undefined;
}

interface Parsed extends Rules {
  getCrawlDelay(ua?: string): number | undefined;
  getSitemaps(): string[];
}

// robots-parser is CommonJS with an ES-style `export default` in its typings:
// under NodeNext, TypeScript types the default import as the module object,
// while Node hands over module.exports, the function itself.
type Parse = (url: string, contents: string) => Parsed;
const m = robotsParserModule as unknown as Parse | { default: Parse };
const robotsParser: Parse = typeof m === 'function' ? m : m.default;

const ALLOW_ALL: Rules = { isAllowed: () => true };
const DISALLOW_ALL: Rules = { isAllowed: () => false };

export interface RobotsLog {
  warn(obj: object, msg?: string): void;
}

/**
 * RobotsPolicy decides what happens when robots.txt cannot be read yet:
 * each returns true to try again (having blocked the host for as long as it
 * should wait), false to give up.
 */
export interface RobotsPolicy {
  /** A 429 or 503, with its Retry-After header; `attempt` counts from 1. */
  throttled(host: string, retryAfter: string | null, attempt: number): boolean;
  /** A network error, timeout or 5xx; false once the host is parked. */
  failed(host: string): boolean;
  /** robots.txt was read (or found absent): the host answers, its failure streak ends. */
  answered(host: string): void;
}

/** What one origin's robots.txt says beyond its rules. */
export interface RobotsInfo {
  /** Crawl-delay for our agent (or *), in seconds. */
  crawlDelay: number | undefined;
  /** Sitemap: lines, as written (absolute URLs). */
  sitemaps: string[];
}

const NO_INFO: RobotsInfo = { crawlDelay: undefined, sitemaps: [] };

export class RobotsCache {
  private readonly ready = new Map<string, Rules>();
  private readonly infos = new Map<string, RobotsInfo>();
  private readonly loading = new Map<string, Promise<Rules>>();

  constructor(
    private readonly fetcher: Fetcher,
    private readonly signal: AbortSignal,
    private readonly log: RobotsLog,
    private readonly policy: RobotsPolicy,
  ) {}

  /** allowedNow answers from the cache alone: undefined when the origin's robots.txt is not loaded yet. */
  allowedNow(url: string): boolean | undefined {
    const rules = this.ready.get(new URL(url).origin);
    return rules === undefined ? undefined : rules.isAllowed(url, ROBOTS_AGENT) !== false;
  }

  /** info is what a loaded robots.txt said besides its rules (nothing for an origin not loaded). */
  info(origin: string): RobotsInfo {
    return this.infos.get(origin) ?? NO_INFO;
  }

  /** allowed loads the origin's robots.txt on first use; concurrent callers share the one request. */
  async allowed(url: string): Promise<boolean> {
    const rules = await this.rules(new URL(url).origin);
    // robots-parser answers undefined for URLs of another origin; ours never are.
    return rules.isAllowed(url, ROBOTS_AGENT) !== false;
  }

  /** load reads an origin's robots.txt unless it is cached or being read. */
  async load(origin: string): Promise<void> {
    await this.rules(origin);
  }

  private async rules(origin: string): Promise<Rules> {
    const rules = this.ready.get(origin);
    if (rules !== undefined) return rules;
    let p = this.loading.get(origin);
    if (!p) {
      p = this.fetchRules(origin).finally(() => this.loading.delete(origin));
      this.loading.set(origin, p);
    }
    return p;
  }

  private async fetchRules(origin: string): Promise<Rules> {
    const robotsUrl = `${origin}/robots.txt`;
    const host = new URL(origin).host;
    let url = robotsUrl;
    let rules: Rules = ALLOW_ALL;
    let throttles = 0;
    try {
      for (let hop = 0; ; ) {
        let res;
        try {
          res = await this.fetcher.get(url, this.signal, (status) => status >= 200 && status < 300);
        } catch (err) {
          if (this.signal.aborted) throw err;
          if (this.policy.failed(host)) continue;
          throw err;
        }
        if (res.status >= 200 && res.status < 300) {
          this.policy.answered(host);
          // Parsed against the original URL: the rules apply to this origin
          // even when the file was served from elsewhere.
          const parsed = robotsParser(robotsUrl, (res.body ?? Buffer.alloc(0)).toString('utf8'));
          rules = parsed;
          const delay = parsed.getCrawlDelay(ROBOTS_AGENT);
          this.infos.set(origin, { crawlDelay: delay !== undefined && delay > 0 ? delay : undefined, sitemaps: parsed.getSitemaps() });
          break;
        }
        if ((res.status === 429 || res.status === 503) && this.policy.throttled(host, res.retryAfter, ++throttles)) continue;
        const next = res.status >= 300 && res.status < 400 && res.location !== null ? canonicalize(res.location, url) : null;
        if (next !== null && hop < MAX_ROBOTS_REDIRECTS) {
          url = next;
          hop++;
          continue;
        }
        if (res.status >= 500) {
          if (this.policy.failed(host)) continue;
          this.log.warn({ url: robotsUrl, status: res.status }, 'robots.txt unreachable: not crawling this origin');
          rules = DISALLOW_ALL;
        } else if (res.status !== 429) {
          this.policy.answered(host);
        }
        break;
      }
    } catch (err) {
      if (this.signal.aborted) throw err;
      this.log.warn({ url: robotsUrl, err: (err as Error).message }, 'robots.txt unreachable: not crawling this origin');
      rules = DISALLOW_ALL;
    }
    this.ready.set(origin, rules);
    return rules;
  }
}
