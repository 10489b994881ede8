// What a page yields: its title, its outgoing links and the spec's fields,
// from one cheerio parse. htmlparser2 (via the `xml: { xmlMode: false }`
// option) is used rather than parse5: several times faster, and forgiving
// enough for titles, anchors and text. Bytes are decoded with the charset the
// server declared, else sniffed from the document (BOM, <meta charset>), as
// browsers do.

import { loadBuffer } from 'cheerio';
import { isHtml, type Fetched } from './fetch.js';
import { canonicalize } from './frontier.js';

/** Caps on strings copied into an emitted item, which must stay under MAX_STATE_BYTES as JSON. */
export const MAX_TITLE_CHARS = 1024;
export const MAX_FIELD_CHARS = 4096;

export interface Extracted {
  title: string | null;
  /** Absolute canonical http(s) URLs, deduped, in document order. */
  links: string[];
  fields: Record<string, string | null>;
}

const charsetOf = (contentType: string | null): string | undefined =>
  contentType ? /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(contentType)?.[1] : undefined;

const cap = (s: string, n: number): string => (s.length > n ? s.slice(0, n) : s);

/**
 * extract parses an HTML body fetched from `pageUrl` (the final URL, after
 * redirects). Relative links resolve against <base href> when the page has
 * one, else against `pageUrl`. A field is the trimmed text of the first
 * element its selector matches, or null when none does.
 */
export function extract(
  body: Buffer,
  contentType: string | null,
  pageUrl: string,
  selectors: Record<string, string>,
): Extracted {
  const charset = charsetOf(contentType);
  const $ = loadBuffer(body, {
    xml: { xmlMode: false, decodeEntities: true },
    encoding: charset ? { transportLayerEncodingLabel: charset } : {},
  });

  const titleEl = $('title').first();
  const title = titleEl.length > 0 ? cap(titleEl.text().trim(), MAX_TITLE_CHARS) : null;

  let base = pageUrl;
  const baseHref = $('base[href]').first().attr('href');
  if (baseHref !== undefined) {
    try {
      base = new URL(baseHref, pageUrl).href;
    } catch {
      // An unparsable <base> is ignored, as browsers do.
    }
  }

  const seen = new Set<string>();
  const links: string[] = [];
  $('a[href], area[href]').each((_, el) => {
    const href = el.attribs.href;
    if (href === undefined) return;
    const url = canonicalize(href.trim(), base);
    if (url !== null && !seen.has(url)) {
      seen.add(url);
      links.push(url);
    }
  });

  const fields: Record<string, string | null> = {};
  for (const [name, sel] of Object.entries(selectors)) {
    const el = $(sel).first();
    fields[name] = el.length > 0 ? cap(el.text().trim(), MAX_FIELD_CHARS) : null;
  }
  return { title, links, fields };
}

/** extractPage reads a fetched page: an HTML one is extracted, any other has no title or links and every field null. */
export function extractPage(res: Pick<Fetched, 'body' | 'contentType' | 'url'>, selectors: Record<string, string>): Extracted {
  if (res.body !== null && isHtml(res.contentType)) return extract(res.body, res.contentType, res.url, selectors);
  const ex: Extracted = { title: null, links: [], fields: {} };
  for (const k of Object.keys(selectors)) ex.fields[k] = null;
  return ex;
}
