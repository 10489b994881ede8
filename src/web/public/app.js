// The gaffer dashboard: fetches /api/state (the status with its counts, and
// the first page of resources), pages on through /api/resources as the table
// scrolls or is filtered (pages.js), listens to /api/events (server-sent
// events fed by NATS events.>), and refetches the state shortly after any
// event that moves a resource or changes a worker or the leader. No build
// step: preact and htm come from /vendor/ through index.html's import map.

import { h, render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { applyProgress, changesState } from './format.js';
import { Feed, Header, Resources, Workers } from './views.js';
import { Schedules } from './schedules.js';
import { usePages } from './pages.js';

const html = htm.bind(h);

const FEED_MAX = 200;
/** Events come in bursts (a worker lost moves many resources): refetch once per burst. */
const REFETCH_DELAY_MS = 300;
/** After a failed fetch (no leader during a failover, say), try again this soon. */
const RETRY_MS = 2000;
/** EventSource gives up for good on an HTTP error; we start a new one after this. */
const REOPEN_MS = 3000;

/**
 * useClusterState keeps /api/state: refresh() asks for a fetch soon; at most
 * one runs at a time, and a request made while one runs gets another after it
 * (the running one may predate the event that asked).
 */
function useClusterState() {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const ctl = useRef({ running: false, again: false, timer: 0 });

  const load = useCallback(async () => {
    const c = ctl.current;
    if (c.running) {
      c.again = true;
      return;
    }
    c.running = true;
    try {
      const res = await fetch('/api/state', { cache: 'no-store', headers: { Accept: 'application/json' } });
      const body = await res.json().catch(() => null);
      if (!res.ok || !body || body.ok === false) {
        const e = body?.error;
        throw new Error(e ? `${e.code}: ${e.message}` : `HTTP ${res.status}`);
      }
      setData({ ...body, resources: Array.isArray(body.resources) ? body.resources : [] });
      setError(null);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      refresh(RETRY_MS);
    } finally {
      c.running = false;
      if (c.again) {
        c.again = false;
        refresh();
      }
    }
  }, []);

  const refresh = useCallback((delay = REFETCH_DELAY_MS) => {
    const c = ctl.current;
    if (c.timer) return;
    c.timer = setTimeout(() => {
      c.timer = 0;
      void load();
    }, delay);
  }, []);

  return { data, setData, error, load, refresh };
}

/** useEvents opens /api/events and reports each event; `live` follows the EventSource's state. */
function useEvents(onEvent, onOpen, onResync) {
  const [live, setLive] = useState('connecting');
  const [servedBy, setServedBy] = useState('');
  const [generation, setGeneration] = useState(0);
  const handlers = useRef({ onEvent, onOpen, onResync });
  handlers.current = { onEvent, onOpen, onResync };

  useEffect(() => {
    const es = new EventSource('/api/events');
    let reopen = 0;
    es.onopen = () => {
      setLive('live');
      handlers.current.onOpen();
    };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        setLive('offline');
        reopen = setTimeout(() => setGeneration((g) => g + 1), REOPEN_MS);
      } else setLive('reconnecting');
    };
    es.onmessage = (m) => {
      let ev;
      try {
        ev = JSON.parse(m.data);
      } catch {
        return;
      }
      if (ev && typeof ev === 'object' && typeof ev.kind === 'string') handlers.current.onEvent(ev);
    };
    es.addEventListener('hello', (m) => {
      try {
        setServedBy(String(JSON.parse(m.data).servedBy ?? ''));
      } catch {
        /* an old server */
      }
    });
    es.addEventListener('resync', (m) => {
      let dropped = 0;
      try {
        dropped = Number(JSON.parse(m.data).dropped) || 0;
      } catch {
        /* still resync */
      }
      handlers.current.onResync(dropped);
    });
    return () => {
      clearTimeout(reopen);
      es.close();
    };
  }, [generation]);

  return { live, servedBy };
}

function App() {
  const { data, error, load, refresh } = useClusterState();
  const [events, setEvents] = useState([]);
  const [showProgress, setShowProgress] = useState(false);
  const [filter, setFilter] = useState({ prefix: '', state: '', worker: '' });
  const pages = usePages(data, filter, data);
  const seq = useRef(0);
  const progressShown = useRef(showProgress);
  progressShown.current = showProgress;

  const push = (ev) => {
    const item = { seq: ++seq.current, ev };
    setEvents((list) => [item, ...list].slice(0, FEED_MAX));
  };

  const onEvent = (ev) => {
    if (ev.kind === 'task.progress') {
      // Progress is applied in place: no refetch for it.
      pages.setPages((p) => ({ ...p, rows: applyProgress(p.rows, ev) }));
      if (!progressShown.current) return;
    } else if (changesState(ev.kind)) refresh();
    push(ev);
  };
  // On every (re)connect: events may have been missed meanwhile.
  const onOpen = () => refresh(0);
  const onResync = (dropped) => {
    push({ kind: 'dashboard.resync', at: new Date().toISOString(), by: '', dropped });
    refresh(0);
  };
  const { live, servedBy } = useEvents(onEvent, onOpen, onResync);

  useEffect(() => {
    void load();
  }, []);

  const status = data?.status;
  const shownError = error ?? pages.error;
  return html`
    <${Header} status=${status} resources=${pages.rows} servedBy=${servedBy || data?.servedBy} live=${live} />
    ${shownError ? html`<div class="error" role="alert" data-testid="error">Cannot read the cluster state: ${shownError}</div>` : ''}
    <main class="layout">
      <div class="primary">
        <${Workers} workers=${status?.workers} />
        <${Schedules} resources=${pages.rows} writable=${data?.writable === true} onChanged=${() => refresh(0)} />
        <${Resources} pages=${pages} total=${status?.resources?.total} filter=${filter} setFilter=${setFilter} workers=${status?.workers} />
      </div>
      <${Feed} events=${events} showProgress=${showProgress} setShowProgress=${setShowProgress} />
    </main>
  `;
}

const root = document.getElementById('app');
root.replaceChildren(); // the "Loading…" placeholder
render(html`<${App} />`, root);
