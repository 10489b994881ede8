// HostQueues: the crawl's back queues, one FIFO per host (host:port), and a
// min-heap of the time each host may next be fetched (Mercator; IIR ch. 20).
// take() hands out the URL of whichever host may be fetched soonest, so the
// crawl's throughput reaches the sum of the per-host limits instead of
// stalling on the few hosts at the head of one queue.
//
// The heap's keys are lower bounds: politeness decides the real time (rate
// window, Crawl-delay, concurrency, Retry-After), and a host popped early is
// pushed back with its real time. A host at its concurrency limit leaves the
// heap and comes back when one of its requests completes (wake()).
//
// A host starts in `setup` (robots.txt not read yet) when the crawl asks for
// it, and is scheduled once ready(); a parked host's URLs are dropped.

import type { Politeness, Release } from './politeness.js';

export interface Entry {
  url: string;
  depth: number;
  /** Times this URL was put back: answered 429/503, or its host did not answer. */
  retries?: number;
}

export type HostStatus = 'setup' | 'ready' | 'parked';

interface Host {
  queue: Entry[];
  head: number;
  inHeap: boolean;
  status: HostStatus;
}

interface Slot {
  at: number;
  seq: number;
  host: string;
}

export type Taken = { entry: Entry; release: Release } | { at: number };

export const hostOf = (url: string): string => new URL(url).host;

export class HostQueues {
  private readonly hosts = new Map<string, Host>();
  private readonly heap: Slot[] = [];
  private seq = 0;
  private total = 0;
  /** Called once per host when its first URL arrives and it needs setup. */
  onNewHost: (host: string, url: string) => void = () => {};

  constructor(
    private readonly politeness: Politeness,
    private readonly needsSetup: boolean,
  ) {}

  get queued(): number {
    return this.total;
  }

  status(host: string): HostStatus | undefined {
    return this.hosts.get(host)?.status;
  }

  /** add queues an entry at the back (or the front, for a retry); false when its host is parked. */
  add(e: Entry, front = false): boolean {
    const name = hostOf(e.url);
    let h = this.hosts.get(name);
    if (!h) {
      h = { queue: [], head: 0, inHeap: false, status: this.needsSetup ? 'setup' : 'ready' };
      this.hosts.set(name, h);
      if (h.status === 'setup') this.onNewHost(name, e.url);
    }
    if (h.status === 'parked') return false;
    if (front && h.head > 0) h.queue[--h.head] = e;
    else if (front) h.queue.unshift(e);
    else h.queue.push(e);
    this.total++;
    this.schedule(name, h);
    return true;
  }

  /** ready ends a host's setup: its URLs may be fetched from now on. */
  ready(host: string): void {
    const h = this.hosts.get(host);
    if (!h || h.status !== 'setup') return;
    h.status = 'ready';
    this.schedule(host, h);
  }

  /** wake puts a host back in the heap after one of its requests completed. */
  wake(host: string): void {
    const h = this.hosts.get(host);
    if (h) this.schedule(host, h);
  }

  /** park drops a host's queued URLs, and any it is given later; returns what was dropped. */
  park(host: string): Entry[] {
    let h = this.hosts.get(host);
    if (!h) {
      h = { queue: [], head: 0, inHeap: false, status: 'parked' };
      this.hosts.set(host, h);
    }
    h.status = 'parked';
    const dropped = h.queue.slice(h.head);
    h.queue = [];
    h.head = 0;
    this.total -= dropped.length;
    return dropped;
  }

  /**
   * take pops the next URL of a host that may be fetched now and holds its
   * politeness slot; otherwise it says when the soonest host may be fetched,
   * or returns undefined when no host can be scheduled until something changes.
   */
  take(now: number): Taken | undefined {
    while (this.heap.length > 0) {
      const top = this.heap[0]!;
      const h = this.hosts.get(top.host)!;
      if (h.status !== 'ready' || h.head >= h.queue.length) {
        this.pop();
        h.inHeap = false;
        continue;
      }
      const at = this.politeness.readyAt(top.host, now);
      if (at > now) {
        if (at <= top.at) return { at };
        // Scheduled too early: back in with its real time (or out until a release).
        this.pop();
        h.inHeap = false;
        if (at !== Infinity) this.push(top.host, h, at);
        continue;
      }
      const release = this.politeness.take(top.host);
      if (!release) return { at: now + 1 };
      this.pop();
      h.inHeap = false;
      const entry = h.queue[h.head]!;
      h.queue[h.head++] = undefined as unknown as Entry;
      if (h.head > 1024 && h.head * 2 > h.queue.length) {
        h.queue = h.queue.slice(h.head);
        h.head = 0;
      }
      this.total--;
      this.schedule(top.host, h);
      return { entry, release };
    }
    return undefined;
  }

  /** lengths gives each host's number of queued URLs (hosts with none left out). */
  *lengths(): IterableIterator<[string, number]> {
    for (const [name, h] of this.hosts) if (h.queue.length > h.head) yield [name, h.queue.length - h.head];
  }

  /** takeBack removes up to `n` of a host's newest queued URLs and returns them. */
  takeBack(host: string, n: number): Entry[] {
    const h = this.hosts.get(host);
    if (!h) return [];
    const k = Math.min(n, h.queue.length - h.head);
    const out = h.queue.splice(h.queue.length - k, k);
    this.total -= out.length;
    return out;
  }

  /** entries lists every queued URL, host by host. */
  *entries(): IterableIterator<Entry> {
    for (const h of this.hosts.values()) for (let i = h.head; i < h.queue.length; i++) yield h.queue[i]!;
  }

  /** drain empties every queue and returns what was in it. */
  drain(): Entry[] {
    const out = [...this.entries()];
    for (const h of this.hosts.values()) {
      h.queue = [];
      h.head = 0;
    }
    this.total = 0;
    return out;
  }

  private schedule(name: string, h: Host): void {
    if (h.inHeap || h.status !== 'ready' || h.head >= h.queue.length) return;
    const at = this.politeness.readyAt(name);
    if (at !== Infinity) this.push(name, h, at);
  }

  private push(host: string, h: Host, at: number): void {
    h.inHeap = true;
    const heap = this.heap;
    heap.push({ at, seq: ++this.seq, host });
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(heap[i]!, heap[p]!)) break;
      [heap[i], heap[p]] = [heap[p]!, heap[i]!];
      i = p;
    }
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
      if (m === i) break;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  }
}

const less = (a: Slot, b: Slot): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);
