// URL canonicalization and the crawl frontier. Canonical URLs are the crawl's
// identity for everything: dedupe, the visited set, checkpoints and the ids
// of emitted items, so they must be stable across runs and processes.

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

export interface Entry {
  url: string;
  depth: number;
}

/**
 * Frontier is the queue of URLs to fetch plus the set of every URL already
 * queued, in flight or done ("seen"), so a URL enters the queue at most once,
 * whether it is found as a link or as a redirect target.
 */
export class Frontier {
  private queue: Entry[] = [];
  private head = 0;
  private readonly seen = new Set<string>();
  /** Finished URLs (fetched, failed, refused or redirected away): what a resume must not fetch again. */
  private readonly done = new Set<string>();
  /** Dequeued but not finished: on a resume these are fetched again. */
  private readonly active = new Map<string, number>();

  constructor(visited: Iterable<string> = [], queued: Iterable<Entry> = []) {
    for (const url of visited) {
      this.seen.add(url);
      this.done.add(url);
    }
    for (const e of queued) this.push(e.url, e.depth);
  }

  get queued(): number {
    return this.queue.length - this.head;
  }

  get inFlight(): number {
    return this.active.size;
  }

  get visitedCount(): number {
    return this.done.size;
  }

  has(url: string): boolean {
    return this.seen.has(url);
  }

  /** push queues `url` unless it was seen before; returns whether it was queued. */
  push(url: string, depth: number): boolean {
    if (this.seen.has(url)) return false;
    this.seen.add(url);
    this.queue.push({ url, depth });
    return true;
  }

  /** take dequeues the next URL (breadth first) and marks it in flight. */
  take(): Entry | undefined {
    if (this.head >= this.queue.length) return undefined;
    const e = this.queue[this.head]!;
    this.head++;
    // Compact now and then so a long crawl does not keep every entry alive
    // (and shift() on a big array would be O(n) per call).
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.active.set(e.url, e.depth);
    return e;
  }

  /**
   * claim marks a redirect target as seen on behalf of an in-flight fetch;
   * false means it was seen already, so this chain stops and the target is
   * (or was) fetched on its own, exactly once.
   */
  claim(url: string): boolean {
    if (this.seen.has(url)) return false;
    this.seen.add(url);
    return true;
  }

  /** finish marks an in-flight URL (and any redirect hops it went through) as done. */
  finish(url: string, hops: readonly string[] = []): void {
    this.active.delete(url);
    this.done.add(url);
    for (const h of hops) this.done.add(h);
  }

  /** drain empties the queue and returns what was in it (URLs never fetched because the crawl hit maxPages). */
  drain(): Entry[] {
    const rest = this.queue.slice(this.head);
    this.queue = [];
    this.head = 0;
    return rest;
  }

  /**
   * snapshot is the state a resume needs: the visited URLs, sorted (they
   * compress far better so), and what is still to fetch, in flight first so a
   * resume retries those before anything new.
   */
  snapshot(): { visited: string[]; frontier: Entry[] } {
    const frontier: Entry[] = [];
    for (const [url, depth] of this.active) frontier.push({ url, depth });
    for (let i = this.head; i < this.queue.length; i++) frontier.push(this.queue[i]!);
    return { visited: [...this.done].sort(), frontier };
  }
}
