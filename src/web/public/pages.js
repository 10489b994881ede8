// usePages keeps the resource rows the dashboard shows, a page at a time.
// Unfiltered, the first page comes with /api/state; with a filter (name
// prefix, state, worker), the leader filters and /api/resources pages. A
// cluster of a million resources is never read whole: rows are added as the
// table is scrolled (more()), and a refresh reads the first page again and
// keeps the rows already loaded beyond it.

import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

/** query renders a filter as /api/resources parameters. */
export function query(filter, after) {
  const q = new URLSearchParams();
  if (filter.prefix) q.set('prefix', filter.prefix);
  if (filter.state) q.set('state', filter.state);
  if (filter.worker) q.set('worker', filter.worker);
  if (after) q.set('after', after);
  return q.toString();
}

export const isFiltered = (f) => !!(f.prefix || f.state || f.worker);

/** merge puts a fresh first page before the rows loaded after it (names sort the same way on both sides). */
export function merge(first, next, old) {
  if (!next) return { rows: first, next };
  const tail = old.rows.filter((r) => r.name > next);
  return tail.length > 0 ? { rows: [...first, ...tail], next: old.next } : { rows: first, next };
}

async function getJson(url) {
  const res = await fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
  const body = await res.json().catch(() => null);
  if (!res.ok || !body || body.ok === false) {
    const e = body?.error;
    throw new Error(e ? `${e.code}: ${e.message}` : `HTTP ${res.status}`);
  }
  return body;
}

/**
 * usePages: `base` is /api/state's body (its first page), `filter` the
 * table's filters, `tick` changes whenever the state is read again.
 */
export function usePages(base, filter, tick) {
  const [pages, setPages] = useState({ rows: [], next: undefined, key: '' });
  const [error, setError] = useState(null);
  const loading = useRef(false);
  const key = query(filter);

  useEffect(() => {
    if (!isFiltered(filter)) {
      if (!base) return;
      setPages((old) => (old.key === '' ? { ...merge(base.resources, base.next, old), key: '' } : { rows: base.resources, next: base.next, key: '' }));
      return;
    }
    let cancelled = false;
    getJson(`/api/resources?${key}`).then(
      (p) => {
        if (cancelled) return;
        setError(null);
        setPages((old) => (old.key === key ? { ...merge(p.resources, p.next, old), key } : { rows: p.resources, next: p.next, key }));
      },
      (err) => !cancelled && setError(err.message),
    );
    return () => {
      cancelled = true;
    };
  }, [key, tick, base]);

  const more = useCallback(() => {
    if (loading.current || !pages.next || pages.key !== key) return;
    loading.current = true;
    getJson(`/api/resources?${query(filter, pages.next)}`)
      .then(
        (p) => setPages((old) => (old.key === key && old.next === pages.next ? { rows: [...old.rows, ...p.resources], next: p.next, key } : old)),
        (err) => setError(err.message),
      )
      .finally(() => {
        loading.current = false;
      });
  }, [pages, key]);

  return { rows: pages.key === key ? pages.rows : [], next: pages.key === key ? pages.next : undefined, more, setPages, error };
}
