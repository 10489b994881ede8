// Sitemaps (sitemaps.org protocol) as extra seeds: the `Sitemap:` lines of a
// seed host's robots.txt, or its /sitemap.xml when robots.txt names none.
// A sitemap index is followed to the sitemaps it lists; both kinds are read
// with cheerio in XML mode. Gzipped sitemaps (.xml.gz) are not read.
//
// Bounds, so a hostile or huge site cannot swamp the crawl: at most
// MAX_SITEMAPS files per host, nesting at most MAX_DEPTH indexes deep, and
// each file's body is capped by the fetcher like any page.

import { load } from 'cheerio/slim';
import { canonicalize } from './frontier.js';
import type { Fetcher } from './fetch.js';

export const MAX_SITEMAPS = 50;
const MAX_DEPTH = 2;

export interface Sitemap {
  /** Page URLs (<urlset><url><loc>), canonical. */
  pages: string[];
  /** Nested sitemaps (<sitemapindex><sitemap><loc>), canonical. */
  sitemaps: string[];
}

/** parseSitemap reads a sitemap or sitemap index; anything else yields nothing. */
export function parseSitemap(xml: string, base: string): Sitemap {
  const $ = load(xml, { xml: true });
  const locs = (sel: string): string[] => {
    const out: string[] = [];
    $(sel).each((_, el) => {
      const u = canonicalize($(el).text().trim(), base);
      if (u !== null) out.push(u);
    });
    return out;
  };
  return { pages: locs('urlset > url > loc'), sitemaps: locs('sitemapindex > sitemap > loc') };
}

export interface SitemapLog {
  warn(obj: object, msg?: string): void;
}

/**
 * readSitemaps fetches the given sitemaps (and the ones their indexes list)
 * and calls onPages with each file's page URLs. Failed files are logged and
 * skipped: a sitemap only adds seeds, the crawl does not depend on it.
 */
export async function readSitemaps(
  fetcher: Fetcher,
  roots: readonly string[],
  signal: AbortSignal,
  log: SitemapLog,
  onPages: (urls: string[]) => void,
): Promise<void> {
  const seen = new Set<string>();
  let level = roots.map((r) => canonicalize(r)).filter((u): u is string => u !== null);
  for (let depth = 0; depth <= MAX_DEPTH && level.length > 0; depth++) {
    const next: string[] = [];
    for (const url of level) {
      if (seen.has(url) || seen.size >= MAX_SITEMAPS) continue;
      seen.add(url);
      try {
        const res = await fetcher.get(url, signal, (status) => status >= 200 && status < 300);
        if (res.status < 200 || res.status >= 300 || res.body === null) {
          if (res.status !== 404) log.warn({ url, status: res.status }, 'crawl: sitemap not read');
          continue;
        }
        const map = parseSitemap(res.body.toString('utf8'), url);
        if (map.pages.length > 0) onPages(map.pages);
        next.push(...map.sitemaps);
      } catch (err) {
        if (signal.aborted) throw err;
        log.warn({ url, err: (err as Error).message }, 'crawl: sitemap not read');
      }
    }
    level = next;
  }
}
