// SortedNames keeps every resource name in order for paged lists, without
// sorting them all again after each add or remove: a million names take
// about half a second to sort, and that is the leader's loop standing still.
// Names added since the last read are sorted alone and merged in; removed
// ones are dropped in the same pass. A read after a batch of adds costs one
// linear merge.

export class SortedNames {
  private sorted: string[] | undefined;
  private added: string[] = [];
  /** Names removed since the last read (some may be back: `live` says). */
  private removed = new Set<string>();

  /** changed notes a name added or removed; with no name, the order is rebuilt on the next read. */
  changed(name?: string, added?: boolean): void {
    if (name === undefined || this.sorted === undefined) {
      this.sorted = undefined;
      this.added = [];
      this.removed.clear();
    } else if (added) this.added.push(name);
    else this.removed.add(name);
  }

  /** of returns the names of `live` in order (`live` is the truth: it has every name, and only those). */
  of(live: ReadonlyMap<string, unknown>): readonly string[] {
    if (this.sorted === undefined || this.added.length + this.removed.size > live.size / 4) {
      this.sorted = [...live.keys()].sort(byName);
    } else if (this.added.length > 0 || this.removed.size > 0) {
      this.sorted = merge(this.sorted, this.added.sort(byName), (n) => !this.removed.has(n) || live.has(n));
    }
    this.added = [];
    this.removed.clear();
    return this.sorted;
  }
}

/** merge joins two sorted lists, each name once, keeping those `keep` allows. */
function merge(a: readonly string[], b: readonly string[], keep: (name: string) => boolean): string[] {
  const out = new Array<string>(a.length + b.length);
  let n = 0;
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const name = j >= b.length || (i < a.length && a[i]! <= b[j]!) ? a[i++]! : b[j++]!;
    if ((n > 0 && out[n - 1] === name) || !keep(name)) continue;
    out[n++] = name;
  }
  out.length = n;
  return out;
}

export function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
