// The dashboard's views: header, workers, resources (with filters), event feed.
// Plain preact components over htm; data comes from app.js. The resource
// table draws only the rows in view (plus a margin), however many are
// loaded, and asks for the next page as its end comes into view.

import { h } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { STATES, clock, compact, countStates, fmtNumber, load, progressOf, summary } from './format.js';

const html = htm.bind(h);

/** Rows drawn beyond the visible ones, above and below. */
const OVERSCAN = 20;
/** A row's height until one is measured (px). */
const ROW_GUESS = 37;
/** The name filter waits for typing to pause this long before asking the leader. */
const TYPING_MS = 250;

const LIVE_TEXT = { live: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…', offline: 'offline' };

export function Header({ status, resources, servedBy, live }) {
  // The leader's counts when it sends them (every resource), else the loaded rows'.
  const byState = status?.resources?.byState;
  const counts = byState ? Object.fromEntries(STATES.map((s) => [s, byState[s] ?? 0])) : countStates(resources);
  const leader = status?.leader || '—';
  const term = status?.term;
  const masters = Array.isArray(status?.masters) ? status.masters : [];
  return html`
    <header class="top">
      <div class="brand">gaffer</div>
      <dl class="facts">
        <div><dt>leader</dt><dd data-testid="leader">${leader}</dd></div>
        <div><dt>term</dt><dd data-testid="term">${term ?? '—'}</dd></div>
        <div>
          <dt>masters</dt>
          <dd data-testid="masters">
            ${masters.map((m) => html`<span class=${m === status?.leader ? 'chip leader' : 'chip'} key=${m}>${m}</span>`)}
          </dd>
        </div>
      </dl>
      <ul class="counts" aria-label="resources by state">
        ${STATES.map(
          (s) => html`<li key=${s} class=${`count state-${s}`} data-testid=${`count-${s}`} data-count=${counts[s]}>
            <span class="n">${counts[s]}</span> ${s}
          </li>`,
        )}
      </ul>
      <div class="live" data-testid="live" data-state=${live} title=${servedBy ? `served by ${servedBy}` : ''}>
        <span class="dot"></span>${LIVE_TEXT[live] ?? live}${servedBy ? html`<span class="via"> via ${servedBy}</span>` : ''}
      </div>
    </header>
  `;
}

export function Workers({ workers }) {
  const list = Array.isArray(workers) ? workers : [];
  return html`
    <section class="card" aria-labelledby="workers-h">
      <h2 id="workers-h">Workers <span class="muted">${list.length}</span></h2>
      ${list.length === 0 ? html`<p class="muted">No live workers.</p>` : ''}
      <div class="workers" data-testid="workers">
        ${list.map((w) => html`<${WorkerCard} key=${w.id} w=${w} />`)}
      </div>
    </section>
  `;
}

function WorkerCard({ w }) {
  const frac = load(w);
  const labels = w.labels && typeof w.labels === 'object' ? Object.entries(w.labels) : [];
  const level = frac >= 0.9 ? 'high' : frac >= 0.7 ? 'mid' : 'low';
  return html`
    <article class="worker" data-worker=${w.id} data-cordoned=${String(!!w.cordoned)} data-draining=${String(!!w.draining)}>
      <div class="worker-head">
        <span class="worker-id">${w.id}</span>
        ${w.cordoned ? html`<span class="badge cordoned">cordoned</span>` : ''}
        ${w.draining ? html`<span class="badge draining">draining</span>` : ''}
      </div>
      <div class="meter" role="meter" aria-valuemin="0" aria-valuemax=${w.capacity} aria-valuenow=${w.resources} aria-label=${`${w.id} load`}>
        <span class=${`fill ${level}`} style=${{ width: `${(frac * 100).toFixed(1)}%` }}></span>
      </div>
      <div class="worker-load"><span>${fmtNumber(w.resources ?? 0)} / ${fmtNumber(w.capacity ?? 0)}</span><span class="muted">${Math.round(frac * 100)}%</span></div>
      ${labels.length > 0 ? html`<div class="chips">${labels.map(([k, v]) => html`<span class="chip label" key=${k}>${k}=${v}</span>`)}</div>` : ''}
      ${Array.isArray(w.kinds) && w.kinds.length > 0 ? html`<div class="kinds muted">kinds: ${w.kinds.join(', ')}</div>` : ''}
    </article>
  `;
}

export function Resources({ pages, total, filter, setFilter, workers }) {
  const [name, setName] = useState(filter.prefix);
  const rows = pages.rows;
  useEffect(() => {
    // Functional updates: a select changed while the timer ran must not be undone by it.
    const t = setTimeout(() => setFilter((f) => (f.prefix === name.trim() ? f : { ...f, prefix: name.trim() })), TYPING_MS);
    return () => clearTimeout(t);
  }, [name]);
  const workerIds = useMemo(() => (Array.isArray(workers) ? workers : []).map((w) => w.id).sort(), [workers]);
  const set = (k) => (e) => {
    const v = e.currentTarget.value;
    setFilter((f) => ({ ...f, [k]: v }));
  };
  const filtered = !!(filter.prefix || filter.state || filter.worker);
  const count = filtered
    ? `${rows.length}${pages.next ? '+' : ''} match`
    : `${rows.length}${total !== undefined && total !== rows.length ? ` of ${total}` : ''}`;
  return html`
    <section class="card" aria-labelledby="resources-h">
      <h2 id="resources-h">Resources <span class="muted" data-testid="resource-count">${count}</span></h2>
      <div class="filters">
        <label>Name <input type="search" data-testid="filter-name" placeholder="starts with" value=${name} onInput=${(e) => setName(e.currentTarget.value)} /></label>
        <label>State
          <select data-testid="filter-state" value=${filter.state} onChange=${set('state')}>
            <option value="">all</option>
            ${STATES.map((s) => html`<option key=${s} value=${s}>${s}</option>`)}
          </select>
        </label>
        <label>Worker
          <select data-testid="filter-worker" value=${filter.worker} onChange=${set('worker')}>
            <option value="">all</option>
            <option value="-">none</option>
            ${workerIds.map((id) => html`<option key=${id} value=${id}>${id}</option>`)}
          </select>
        </label>
      </div>
      <${RowWindow} rows=${rows} next=${pages.next} more=${pages.more} />
      ${rows.length === 0 ? html`<p class="muted empty">${filtered ? 'Nothing matches the filters.' : 'No resources yet.'}</p>` : ''}
    </section>
  `;
}

/** RowWindow draws the rows in view of its scroll box, with spacers for the rest. */
function RowWindow({ rows, next, more }) {
  const box = useRef(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);
  const [rowH, setRowH] = useState(ROW_GUESS);
  const first = Math.max(0, Math.floor(top / rowH) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((top + height) / rowH) + OVERSCAN);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    setHeight(el.clientHeight || 600);
    const tr = el.querySelector('tbody tr[data-resource]');
    if (tr && tr.offsetHeight > 0 && Math.abs(tr.offsetHeight - rowH) > 1) setRowH(tr.offsetHeight);
    // The end is in view: ask for the next page.
    if (next && last >= rows.length - OVERSCAN) more();
  });
  return html`
    <div class="table-scroll" ref=${box} onScroll=${(e) => setTop(e.currentTarget.scrollTop)}>
      <table class="resources" data-testid="resources">
        <thead><tr><th>Name</th><th>State</th><th>Worker</th><th title="attempt / failures">Att. / fail.</th><th>Progress</th></tr></thead>
        <tbody>
          ${first > 0 ? html`<tr class="spacer" aria-hidden="true" style=${{ height: `${first * rowH}px` }}></tr>` : ''}
          ${rows.slice(first, last).map((r) => html`<${ResourceRow} key=${r.name} r=${r} />`)}
          ${last < rows.length ? html`<tr class="spacer" aria-hidden="true" style=${{ height: `${(rows.length - last) * rowH}px` }}></tr>` : ''}
        </tbody>
      </table>
    </div>
  `;
}

function ResourceRow({ r }) {
  const note = r.error ?? r.reason;
  const [open, setOpen] = useState(false);
  const sharded = Array.isArray(r.shards);
  // One element per cell: at phone width each cell is a two-column grid (label, value).
  return html`
    <tr data-resource=${r.name} data-worker=${r.worker ?? ''} data-state=${r.state} class=${sharded ? 'sharded' : ''}>
      <td data-label="Name" class="name"><div>${r.name}${r.spec?.kind ? html` <span class="kind muted">${r.spec.kind}</span>` : ''}</div></td>
      <td data-label="State">
        <div>
          <span class=${`badge state-${r.state}`}>${r.state}</span>
          ${note ? html`<div class="note muted" title=${note}>${compact(note, 60)}</div>` : ''}
        </div>
      </td>
      <td data-label="Worker" class="worker-cell" data-testid="resource-worker">
        <div>${sharded
          ? html`<button type="button" class="shards-toggle" data-testid="shards-toggle" aria-expanded=${open} onClick=${() => setOpen(!open)}>${open ? '▾' : '▸'} ${r.shards.length} shards</button>`
          : (r.worker ?? '—')}</div>
      </td>
      <td data-label="Att. / fail." class="num"><div>${r.attempt ?? 0} / ${r.failures ?? 0}</div></td>
      <td data-label="Progress" class="progress-cell"><div><${Progress} value=${r.progress} /></div></td>
    </tr>
    ${sharded && open ? r.shards.map((s) => html`<${ShardRow} key=${`${r.name}/${s.index}`} name=${r.name} s=${s} />`) : ''}
  `;
}

/** ShardRow is one shard of an expanded sharded resource. */
function ShardRow({ name, s }) {
  return html`
    <tr class="shard-row" data-shard=${`${name}/${s.index}`} data-worker=${s.worker ?? ''} data-state=${s.state}>
      <td data-label="Shard" class="name"><div><span class="muted">${name}/</span>${s.index}${s.idle === undefined ? '' : html` <span class="kind muted">${s.idle ? 'idle' : 'busy'}</span>`}</div></td>
      <td data-label="State"><div><span class=${`badge state-${s.state}`}>${s.state}</span>${s.error ? html`<div class="note muted" title=${s.error}>${compact(s.error, 60)}</div>` : ''}</div></td>
      <td data-label="Worker" class="worker-cell"><div>${s.worker ?? '—'}</div></td>
      <td data-label="Attempt" class="num"><div>${s.attempt ?? 0}</div></td>
      <td data-label="Progress" class="progress-cell"><div><${Progress} value=${s.progress} /></div></td>
    </tr>
  `;
}

function Progress({ value }) {
  if (value === undefined || value === null) return html`<span class="muted">—</span>`;
  const { numbers, fraction } = progressOf(value);
  if (numbers.length === 0) return html`<span class="json" title=${compact(value, 2000)}>${compact(value, 48)}</span>`;
  return html`
    <div class="progress">
      ${fraction !== undefined
        ? html`<div class="meter small" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow=${Math.round(fraction * 100)}>
            <span class="fill low" style=${{ width: `${(fraction * 100).toFixed(1)}%` }}></span>
          </div>`
        : ''}
      <span class="nums">${numbers.map(([k, v]) => `${k} ${fmtNumber(v)}`).join(' · ')}</span>
    </div>
  `;
}

export function Feed({ events, showProgress, setShowProgress }) {
  return html`
    <section class="card feed" aria-labelledby="feed-h">
      <h2 id="feed-h">Events</h2>
      <label class="toggle"><input type="checkbox" checked=${showProgress} onChange=${(e) => setShowProgress(e.currentTarget.checked)} /> show task.progress</label>
      <ol class="events" data-testid="events">
        ${events.map(
          (e) => html`<li key=${e.seq} data-kind=${e.ev.kind} class=${`ev ev-${String(e.ev.kind).split('.')[0]}`}>
            <time datetime=${e.ev.at}>${clock(e.ev.at)}</time>
            <span class="ev-kind">${e.ev.kind}</span>
            <span class="ev-text">${summary(e.ev)}</span>
            ${e.ev.by ? html`<span class="ev-by muted">by ${e.ev.by}</span>` : ''}
          </li>`,
        )}
      </ol>
      ${events.length === 0 ? html`<p class="muted">Waiting for events…</p>` : ''}
    </section>
  `;
}
