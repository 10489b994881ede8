// What `gaffer apply -f` reads: a JSON or YAML file of resources, and how it
// is cut into requests. A file is a list of { name, spec }, an object
// { resources: [...] }, or (YAML) several documents, each one resource or a
// list of them. Items are sent as they are: the leader validates each one and
// answers a bad one with its own error.

import { parseAllDocuments } from 'yaml';
import { UsageError } from '#platform/config.js';
import { APPLY_SPLIT_BYTES, MAX_APPLY_ITEMS } from '#protocol/apply.js';

export type FileItem = { name: string; spec?: unknown } & Record<string, unknown>;

/** parseApplyFile reads a file's text; `path` picks the format (.json is JSON, anything else may be YAML, which JSON is too). */
export function parseApplyFile(text: string, path: string): FileItem[] {
  if (path.toLowerCase().endsWith('.json')) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`${path} is not valid JSON: ${(err as Error).message}`);
    }
    return itemsOf(v, path);
  }
  const docs = parseAllDocuments(text);
  const out: FileItem[] = [];
  for (const d of Array.isArray(docs) ? docs : [docs]) {
    if (d.errors.length > 0) throw new UsageError(`${path} is not valid YAML: ${d.errors[0]!.message}`);
    const v: unknown = d.toJS();
    if (v === null || v === undefined) continue;
    out.push(...itemsOf(v, path));
  }
  return out;
}

function itemsOf(v: unknown, path: string): FileItem[] {
  const list = Array.isArray(v) ? v : v !== null && typeof v === 'object' && Array.isArray((v as { resources?: unknown }).resources) ? (v as { resources: unknown[] }).resources : [v];
  for (const [i, x] of list.entries()) {
    if (x === null || typeof x !== 'object' || Array.isArray(x)) throw new UsageError(`${path}: item ${i} is not an object with a name and a spec`);
  }
  return list as FileItem[];
}

/** chunks cuts items into requests of at most `max` items and about `maxBytes` of JSON each, in order. */
export function chunks<T>(items: readonly T[], max = MAX_APPLY_ITEMS, maxBytes = APPLY_SPLIT_BYTES): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = Buffer.byteLength(JSON.stringify(item)) + 1;
    if (cur.length > 0 && (cur.length === max || bytes + size > maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(item);
    bytes += size;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}
