// The dashboard's schedules: each scheduled resource with its schedule, next
// fire, the running and the last run, and a pause/resume button. The button
// POSTs to /api/schedule/<action> as JSON from this page's own origin, which
// is what the server's write guard (src/web/writes.ts) asks of a write.

import { h } from 'preact';
import { useState } from 'preact/hooks';
import htm from 'htm';
import { clock } from './format.js';

const html = htm.bind(h);

async function post(action, name) {
  const res = await fetch(`/api/schedule/${action}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ name }),
  });
  const body = await res.json().catch(() => null);
  if (!res.ok || !body || body.ok !== true) throw new Error(body?.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${res.status}`);
  return body;
}

function specText(r) {
  const s = r.spec?.schedule ?? {};
  const when = s.cron !== undefined ? `cron ${s.cron}${s.timeZone ? ` (${s.timeZone})` : ''}` : `every ${s.every}`;
  return `${when} · ${s.overlap ?? 'skip'}`;
}

export function Schedules({ resources, writable, onChanged }) {
  const [busy, setBusy] = useState('');
  const [error, setError] = useState('');
  const list = resources.filter((r) => r.schedule);
  if (list.length === 0) return '';
  const act = async (action, name) => {
    setBusy(name);
    setError('');
    try {
      await post(action, name);
      onChanged();
    } catch (err) {
      setError(`${action} ${name}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      setBusy('');
    }
  };
  return html`
    <section class="card" aria-labelledby="schedules-h">
      <h2 id="schedules-h">Schedules <span class="muted">${list.length}</span></h2>
      ${error ? html`<div class="error" role="alert" data-testid="schedule-error">${error}</div>` : ''}
      <table class="resources schedules" data-testid="schedules">
        <thead><tr><th>Name</th><th>Schedule</th><th>Next fire</th><th>Last run</th><th></th></tr></thead>
        <tbody>
          ${list.map((r) => html`<${ScheduleRow} key=${r.name} r=${r} busy=${busy === r.name} writable=${writable} act=${act} />`)}
        </tbody>
      </table>
    </section>
  `;
}

function ScheduleRow({ r, busy, writable, act }) {
  const s = r.schedule;
  const last = r.runs?.[0];
  const paused = s.paused === true;
  const next = paused ? `paused${s.note ? `: ${s.note}` : ''}` : s.next?.[0] ? `${s.next[0].slice(0, 10)} ${clock(s.next[0])}` : '—';
  const action = paused ? 'resume' : 'pause';
  return html`
    <tr data-schedule=${r.name} data-paused=${String(paused)}>
      <td data-label="Name" class="name"><div>${r.name}</div></td>
      <td data-label="Schedule"><div>${specText(r)}</div></td>
      <td data-label="Next fire" data-testid="schedule-next"><div>${next}</div></td>
      <td data-label="Last run">
        <div>
          ${s.running ? html`<span class="badge state-running">run ${s.running.run} running</span> ` : ''}
          ${last ? html`<span class=${`badge state-${last.state === 'replaced' ? 'restarting' : last.state}`}>run ${last.run} ${last.state}</span>` : s.running ? '' : html`<span class="muted">none yet</span>`}
        </div>
      </td>
      <td data-label=""><div>
        <button type="button" data-testid="schedule-toggle" disabled=${busy || !writable}
          title=${writable ? `${action} ${r.name}` : 'this dashboard takes no writes (it listens beyond loopback)'}
          onClick=${() => act(action, r.name)}>${paused ? 'Resume' : 'Pause'}</button>
      </div></td>
    </tr>
  `;
}
