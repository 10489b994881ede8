// robots.txt, fetched once per origin and cached for the crawl, read with
// robots-parser under the user-agent token `gaffer`. Failures follow RFC 9309:
// an unavailable robots.txt (4xx, or too many redirects) allows everything;
// an unreachable one (5xx, network error, timeout) disallows the whole origin,
// since we cannot know what the site asked for.

import robotsParserModule from 'robots-parser';
import { canonicalize } from './frontier.js';
import type { Fetcher } from './fetch.js';

export const ROBOTS_AGENT = 'gaffer';
const MAX_ROBOTS_REDIRECTS = 5;

interface Rules {
  isAllowed(url: string, ua?: string): boolean | undefined;
}

// robots-parser is CommonJS with an ES-style `export default` in its typings:
// under NodeNext, TypeScript types the default import as the module object,
// while Node hands over module.exports, the function itself.
type Parse = (url: string, contents: string) => Rules;
const m = robotsParserModule as unknown as Parse | { default: Parse };
const robotsParser: Parse = typeof m === 'function' ? m : m.default;

const ALLOW_ALL: Rules = { isAllowed: () => true };
const DISALLOW_ALL: Rules = { isAllowed: () => false };

export interface RobotsLog {
  warn(obj: object, msg?: string): void;
}

export class RobotsCache {
  private readonly ready = new Map<string, Rules>();
  private readonly loading = new Map<string, Promise<Rules>>();

  constructor(
    private readonly fetcher: Fetcher,
    private readonly signal: AbortSignal,
    private readonly log: RobotsLog,
  ) {}

  /** allowedNow answers from the cache alone: undefined when the origin's robots.txt is not loaded yet. */
  allowedNow(url: string): boolean | undefined {
    const rules = this.ready.get(new URL(url).origin);
    return rules === undefined ? undefined : rules.isAllowed(url, ROBOTS_AGENT) !== false;
  }

  /** allowed loads the origin's robots.txt on first use; concurrent callers share the one request. */
  async allowed(url: string): Promise<boolean> {
    const origin = new URL(url).origin;
    let rules = this.ready.get(origin);
    if (rules === undefined) {
      let p = this.loading.get(origin);
      if (!p) {
        p = this.load(origin).finally(() => this.loading.delete(origin));
        this.loading.set(origin, p);
      }
      rules = await p;
    }
    // robots-parser answers undefined for URLs of another origin; ours never are.
    return rules.isAllowed(url, ROBOTS_AGENT) !== false;
  }

  private async load(origin: string): Promise<Rules> {
    const robotsUrl = `${origin}/robots.txt`;
    let url = robotsUrl;
    let rules: Rules = ALLOW_ALL;
    try {
      for (let hop = 0; ; hop++) {
        const res = await this.fetcher.get(url, this.signal, (status) => status >= 200 && status < 300);
        if (res.status >= 200 && res.status < 300) {
          // Parsed against the original URL: the rules apply to this origin
          // even when the file was served from elsewhere.
          rules = robotsParser(robotsUrl, (res.body ?? Buffer.alloc(0)).toString('utf8'));
          break;
        }
        const next = res.status >= 300 && res.status < 400 && res.location !== null ? canonicalize(res.location, url) : null;
        if (next !== null && hop < MAX_ROBOTS_REDIRECTS) {
          url = next;
          continue;
        }
        if (res.status >= 500) {
          this.log.warn({ url: robotsUrl, status: res.status }, 'robots.txt unreachable: not crawling this origin');
          rules = DISALLOW_ALL;
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
