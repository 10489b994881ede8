// The emitted item for one page, kept under MAX_STATE_BYTES: the runtime
// refuses bigger items, and a link farm page can list thousands of URLs.
// When an item would be too big, the links list is cut first, then field
// texts, and the item says `truncated: true` (the only field not always there).

import { MAX_STATE_BYTES, type Json } from '#kinds/api.js';
import type { Extracted } from './extract.js';

export interface Item {
  [k: string]: Json;
  url: string;
  status: number;
  depth: number;
  title: string | null;
  links: string[];
  fields: { [k: string]: string | null };
  fetchedAt: string;
}

const bytes = (v: Json): number => Buffer.byteLength(JSON.stringify(v), 'utf8');

/**
 * upperBound over-estimates an item's JSON size without serializing it (no
 * char takes more than 6 bytes in JSON, as \uXXXX), which settles the common
 * case of an ordinary page cheaply.
 */
function upperBound(item: Item): number {
  let chars = item.url.length + (item.title?.length ?? 0) + item.fetchedAt.length;
  for (const l of item.links) chars += l.length + 3;
  for (const [k, v] of Object.entries(item.fields)) chars += k.length + (v?.length ?? 4) + 6;
  return chars * 6 + 128;
}

export function buildItem(url: string, status: number, depth: number, ex: Extracted, fetchedAt: string, limit = MAX_STATE_BYTES): Item {
  const item: Item = { url, status, depth, title: ex.title, links: ex.links, fields: ex.fields, fetchedAt };
  if (upperBound(item) <= limit || bytes(item) <= limit) return item;
  item.truncated = true;
  // Binary search for the longest prefix of links that fits.
  let lo = 0;
  let hi = ex.links.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    item.links = ex.links.slice(0, mid);
    if (bytes(item) <= limit) lo = mid;
    else hi = mid - 1;
  }
  item.links = ex.links.slice(0, lo);
  // Still too big with no links: long fields or title. Halve them until it
  // fits; only absurd field names in the spec could defeat this.
  item.fields = { ...ex.fields };
  while (bytes(item) > limit) {
    let changed = false;
    for (const [k, v] of Object.entries(item.fields)) {
      if (v) {
        item.fields[k] = v.slice(0, v.length >> 1);
        changed = true;
      }
    }
    if (!changed && item.title) {
      item.title = item.title.slice(0, item.title.length >> 1);
      changed = true;
    }
    if (!changed) break;
  }
  return item;
}
