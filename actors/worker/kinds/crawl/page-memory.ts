// PageMemory is the crawl's side of ctx.store for conditional recrawls
// (recrawl.ts has the rules): it reads what was remembered of a page and
// writes what to remember of it now. The store is a cache, so a read or
// write that fails is logged (once) and costs only a full fetch next time;
// it never fails the crawl (an attempt that lost its resource is stopped
// through its emits and checkpoints).

import type { TaskContext, TaskLog, TaskStore } from '#kinds/api.js';
import { decodeRemembered, encodeRemembered, isNotModified, pageKey, rememberOf, type Answer, type Remembered } from './recrawl.js';
import type { CrawlSpec } from './spec.js';

export { conditionalHeaders } from './recrawl.js';

export class PageMemory {
  private warned = false;
  /** Pages answered 304 this run: counted toward maxPages, not emitted. */
  notModified = 0;

  constructor(private readonly store: TaskStore, private readonly log: TaskLog) {}

  /** of is the memory of a crawl with `conditional` on, or undefined (off, or no store on this worker: said once). */
  static of(spec: CrawlSpec, ctx: TaskContext): PageMemory | undefined {
    if (!spec.conditional) return undefined;
    if (!ctx.store) {
      ctx.log.warn('crawl: conditional is on but this worker has no task store; every page is fetched in full');
      return undefined;
    }
    return new PageMemory(ctx.store, ctx.log);
  }

  /** restore takes the count a checkpoint kept. */
  restore(notModified: number | undefined): void {
    this.notModified = notModified ?? 0;
  }

  /** counters are what the crawl's progress, result and checkpoint add. */
  counters(): { notModified: number } {
    return { notModified: this.notModified };
  }

  /** unchanged is what was remembered of a page whose answer says it has not changed (and counts it), else undefined. */
  unchanged(status: number, asked: Remembered | undefined): Remembered | undefined {
    if (!isNotModified(status, asked)) return undefined;
    this.notModified++;
    return asked;
  }

  /** recall is what the last fetch of `url` left, or undefined (nothing, unreadable, or the store failed). */
  async recall(url: string): Promise<Remembered | undefined> {
    try {
      return decodeRemembered(await this.store.get(pageKey(url)));
    } catch (err) {
      this.warn('reading', err);
      return undefined;
    }
  }

  /** remember keeps a fetched page's validators and links for the next run; a page with none is left as it was. */
  async remember(url: string, answer: Answer, links: readonly string[]): Promise<void> {
    const r = rememberOf(answer, links);
    if (!r) return;
    const value = encodeRemembered(r);
    try {
      // Too many links for one value: forget the page, so a 304 can never stand for links we do not have.
      if (value === undefined) await this.store.delete(pageKey(url));
      else await this.store.put(pageKey(url), value);
    } catch (err) {
      this.warn('writing', err);
    }
  }

  private warn(what: string, err: unknown): void {
    if (this.warned) return;
    this.warned = true;
    this.log.warn({ err: (err as Error)?.message ?? String(err) }, `crawl: ${what} the page memory failed; such pages are fetched in full next run (logged once)`);
  }
}
