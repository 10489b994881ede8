// msg-count: which NATS messages one resource.add causes, by subject, over
// sequential adds through a follower (the add part's cluster: m1 leads, m2
// forwards, 2 workers). A spy on `>` sees each message once, however many
// subscribers get it. Run alone: `node dist/bench/msg-count.js [adds]`.

import { connect } from 'nats';
import { performance } from 'node:perf_hooks';
import { followerCluster } from './add.js';
import { benchConfig } from './config.js';
import { sleep } from './load.js';
import { clientHeaders } from './wire.js';
import { runMain } from '#harness/runner.js';
import { json } from '#protocol/codec.js';
import { ClientSubject } from '#protocol/subjects.js';

/** Subjects with ids or inboxes folded into one row each. */
function family(subject: string): string {
  if (subject.startsWith('_INBOX')) return '_INBOX.* (replies)';
  return subject.replace(/^worker\.[^.]+\./, 'worker.<id>.').replace(/^master\.ack\..+$/, 'master.ack.<id>');
}

async function main(): Promise<number> {
  const adds = Number(process.argv[2] ?? 500);
  if (!Number.isInteger(adds) || adds < 1) throw new Error('usage: msg-count.js [adds ≥ 1]');
  const fc = await followerCluster(benchConfig());
  try {
    const spy = await connect({ servers: fc.cluster.natsUrl, name: 'bench-msg-count' });
    // Let start-up traffic (registrations, first probes) pass.
    await sleep(2000);
    const counts = new Map<string, number>();
    let on = false;
    spy.subscribe('>', { callback: (_e, m) => on && counts.set(family(m.subject), (counts.get(family(m.subject)) ?? 0) + 1) });
    await spy.flush();
    on = true;
    const t0 = performance.now();
    for (let i = 0; i < adds; i++) {
      await fc.nc.request(ClientSubject.add, json.encode({ name: `mc-${Date.now().toString(36)}-${i}` }), { timeout: 5000, headers: clientHeaders() });
    }
    const ms = performance.now() - t0;
    // Reports trail the adds by their batching window.
    await sleep(1500);
    on = false;
    await spy.close();
    let total = 0;
    for (const [subject, n] of [...counts].sort((a, b) => b[1] - a[1])) {
      total += n;
      process.stdout.write(`${(n / adds).toFixed(2).padStart(6)}  ${subject}\n`);
    }
    process.stdout.write(`${(total / adds).toFixed(2).padStart(6)}  messages per add, over ${adds} adds one at a time (${Math.round((adds / ms) * 1000)}/s)\n`);
  } finally {
    await fc.stop();
  }
  return 0;
}

runMain('msg-count', main, { crashCode: 1 });
