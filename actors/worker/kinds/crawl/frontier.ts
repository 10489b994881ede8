// URL canonicalization and the crawl frontier. Canonical URLs are the crawl's
// identity for everything: dedupe, the visited set, checkpoints and the ids
// of emitted items, so they must be stable across runs and processes.

import { HostQueues, type Entry, type Taken } from './host-queues.js';
import type { Politeness } from './politeness.js';
import { SeenSet } from './seen-set.js';

/**
 * canonicalize resolves `href` against `base` and returns its canonical form,
 * or null for anything that is not an http(s) URL. WHATWG URL parsing already
 * lowercases scheme and host, drops default ports and normalizes the path;
 * the fragment is dropped because it never reaches the server. The query is
 * kept as is (reordering parameters can change what a server returns), but
 * an empty one ("page?") is dropped: no server tells the two apart, and links
 * like "page?#top" are common.
 */
export function canonicalize(href: string, base?: string | URL): string | null {
  let u: URL;
  try {
    u = new URL(href, base);
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
  u.hash = '';
  if (u.search === '') u.search = '';
  return u.href;
}

export type { Entry } from './host-queues.js';

/**
 * Frontier is the per-host queues of URLs to fetch plus the set of every URL
 * already queued, in flight or done ("seen"), so a URL enters a queue at most
 * once, whether it is found as a link or as a redirect target.
 *
 * The seen set holds 64-bit hashes (seen-set.ts). The done URLs themselves
 * are kept only for the checkpoint, and only while they can fit one
 * (forgetVisited() drops them for good once they cannot).
 */
export class Frontier {
  private readonly seen = new SeenSet();
  /** Finished URLs (fetched, failed, refused or redirected away): what a resume must not fetch again. */
  private done: Set<string> | undefined = new Set();
  private doneCount = 0;
  /** Dequeued but not finished: on a resume these are fetched again. */
  private readonly active = new Map<string, Entry>();
  readonly queues: HostQueues;
  /** URLs handed to the constructor, queued by start() once the crawl has wired onNewHost. */
  private pending: Entry[];

  constructor(politeness: Politeness, opts: { setup: boolean }, visited: Iterable<string> = [], queued: Iterable<Entry> = []) {
    this.queues = new HostQueues(politeness, opts.setup);
    for (const url of visited) {
      this.seen.add(url);
      this.done!.add(url);
    }
    this.doneCount = this.done!.size;
    this.pending = [...queued];
  }

  start(): void {
    for (const e of this.pending) this.push(e.url, e.depth);
    this.pending = [];
  }

  get queued(): number {
    return this.queues.queued;
  }

  get inFlight(): number {
    return this.active.size;
  }

  get visitedCount(): number {
    return this.doneCount;
  }

  get seenCount(): number {
    return this.seen.size;
  }

  has(url: string): boolean {
    return this.seen.has(url);
  }

  /** push queues `url` unless it was seen before (or its host is parked); returns whether it was queued. */
  push(url: string, depth: number): boolean {
    if (this.seen.has(url)) return false;
    if (!this.queues.add({ url, depth })) return false;
    this.seen.add(url);
    return true;
  }

  /** take dequeues the next URL of the host that may be fetched soonest and marks it in flight (see HostQueues.take). */
  take(now: number): Taken | undefined {
    const t = this.queues.take(now);
    if (t && 'entry' in t) this.active.set(t.entry.url, t.entry);
    return t;
  }

  /**
   * retry puts an in-flight URL back at the front of its host's queue, for
   * after a 429/503. When the answer came from a redirect target, `hops`
   * (the URLs redirected away, the entry's own first) are done and `target`
   * is queued in its place. False when the host is parked.
   */
  retry(url: string, hops: readonly string[] = [], target = url): boolean {
    const e = this.active.get(url);
    if (!e) return false;
    this.active.delete(url);
    for (const h of hops) this.markDone(h);
    return this.queues.add({ url: target, depth: e.depth, retries: (e.retries ?? 0) + 1 }, true);
  }

  /**
   * claim marks a redirect target as seen on behalf of an in-flight fetch;
   * false means it was seen already, so this chain stops and the target is
   * (or was) fetched on its own, exactly once.
   */
  claim(url: string): boolean {
    return this.seen.add(url);
  }

  /** finish marks an in-flight URL (and any redirect hops it went through) as done. */
  finish(url: string, hops: readonly string[] = []): void {
    this.active.delete(url);
    this.markDone(url);
    for (const h of hops) this.markDone(h);
  }

  private markDone(url: string): void {
    if (this.done) {
      if (this.done.has(url)) return;
      this.done.add(url);
    }
    this.doneCount++;
  }

  /** forgetVisited drops the done URLs kept for checkpoints; snapshot() is unavailable from then on. */
  forgetVisited(): void {
    this.done = undefined;
  }

  /** park drops a host's queued URLs and refuses its URLs from now on; returns what was dropped. */
  park(host: string): Entry[] {
    return this.queues.park(host);
  }

  /** drain empties the queues and returns what was in them (URLs never fetched because the crawl hit maxPages). */
  drain(): Entry[] {
    return this.queues.drain();
  }

  /**
   * snapshot is the state a resume needs: the visited URLs, sorted (they
   * compress far better so), and what is still to fetch, in flight first so a
   * resume retries those before anything new; undefined after forgetVisited().
   */
  snapshot(): { visited: string[]; frontier: Entry[] } | undefined {
    if (!this.done) return undefined;
    const frontier: Entry[] = [];
    for (const e of this.active.values()) frontier.push({ url: e.url, depth: e.depth });
    for (const e of this.pending) frontier.push({ url: e.url, depth: e.depth });
    for (const e of this.queues.entries()) frontier.push({ url: e.url, depth: e.depth });
    return { visited: [...this.done].sort(), frontier };
  }
}
