// The built `gaffer` CLI against a real cluster (nats-server, etcd, 2 masters,
// 2 workers): tables and --json for add/ls/get/status/rm, add --wait, exit
// codes for request errors, bad usage and an unreachable cluster, and watch.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cluster, waitFor } from '../harness.js';
import { cliEnv, gaffer, type Run } from '../cli-runner.js';
import { CLI_PATH } from '#devcluster/cluster.js';
import { freePort, startNats } from '#devcluster/servers.js';
import type { AddResult, Resource, StatusResult } from '#protocol/messages.js';

function lines(s: string): string[] {
  return s.split('\n').filter((l) => l.length > 0);
}

test('gaffer CLI', async (t) => {
  const c = await cluster({ masters: 2, workers: 2 });
  await c.ready(2);
  const client = await c.client();
  const at = ['--nats', c.natsUrl];
  const ok = (r: Run) => assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);

  await t.test('add prints a table row, and --json exactly the reply data', async () => {
    const r = await gaffer([...at, 'add', 'books']);
    ok(r);
    const [header, row, ...rest] = lines(r.stdout);
    assert.match(header!, /^NAME\s+STATE\s+WORKER\s+KIND\s+TRIES\s+ID\s+AGE\s+REV\s+DETAIL\s+RESULT$/);
    assert.equal(rest.length, 0);
    const stored = await waitFor('books running', async () => {
      const got = await client.get('books');
      return got.state === 'running' ? got : undefined;
    });
    assert.match(row!, new RegExp(`^books\\s+\\w+\\s+${stored.worker}\\s+noop\\s+1/0\\s+${stored.id.slice(0, 8)}\\s.*\\screated$`));

    // Options after the command work too, and win.
    const j = await gaffer(['--nats', 'nats://127.0.0.1:1', 'add', 'books', '--json', ...at]);
    ok(j);
    const data = JSON.parse(j.stdout) as AddResult;
    assert.deepEqual(data, { created: false, resource: stored });
  });

  await t.test('add --wait returns once the task runs on its worker', async () => {
    const r = await gaffer([...at, 'add', 'waited', '--wait', '--json', '--timeout', '30000']);
    ok(r);
    const data = JSON.parse(r.stdout) as AddResult & { runningOn: string };
    assert.equal(data.created, true);
    assert.equal(data.resource.name, 'waited');
    assert.ok(c.workers.has(data.runningOn), `runningOn ${data.runningOn}`);
    // Not waited for: the CLI has already seen it running.
    const st = await client.workerStatus(data.runningOn);
    assert.ok(st.running.includes('waited'), `${data.runningOn} runs ${JSON.stringify(st.running)}`);

    // An existing, running resource: --wait finds it by polling the worker's status.
    const again = await gaffer([...at, 'add', 'waited', '--wait', '--timeout', '30000']);
    ok(again);
    assert.match(lines(again.stdout)[1]!, new RegExp(`^waited\\s+\\w+\\s+${data.runningOn}\\s.*exists, running$`));
  });

  await t.test('ls lists every resource as a row; --json is the list; --worker filters', async () => {
    await gaffer([...at, 'add', 'films']);
    // Until each task reports running its state may change between two reads.
    const list = await waitFor('every task running', async () => {
      const l = await client.list();
      return l.every((x) => x.state === 'running') ? l : undefined;
    });
    // Read-only runs, independent of each other: at once.
    const [r, j, ...byWorker] = await Promise.all([
      gaffer([...at, 'ls']),
      gaffer([...at, 'ls', '--json']),
      ...['w1', 'w2'].map((w) => gaffer([...at, 'ls', '--worker', w, '--json'])),
    ]);
    ok(r);
    const out = lines(r.stdout);
    assert.match(out[0]!, /^NAME\s+STATE\s+WORKER\s+KIND\s+TRIES\s+ID\s+AGE\s+REV\s+DETAIL$/);
    for (const res of list) {
      assert.ok(
        out.some((l) => new RegExp(`^${res.name}\\s+running\\s+${res.worker}\\s+noop\\s+1/0\\s+${res.id.slice(0, 8)}\\s`).test(l)),
        `a row for ${res.name} in\n${r.stdout}`,
      );
    }
    assert.equal(out.at(-1), `${list.length} resources: ${list.length} running`);

    ok(j!);
    assert.deepEqual(JSON.parse(j!.stdout) as Resource[], list);

    for (const [i, w] of ['w1', 'w2'].entries()) {
      const f = byWorker[i]!;
      ok(f);
      assert.deepEqual(JSON.parse(f.stdout), list.filter((x) => x.worker === w));
    }
  });

  await t.test('get shows one resource', async () => {
    const [r, h] = await Promise.all([gaffer([...at, 'get', 'films', '--json']), gaffer([...at, 'get', 'films'])]);
    ok(r);
    assert.deepEqual(JSON.parse(r.stdout), await client.get('films'));
    ok(h);
    assert.match(lines(h.stdout)[1]!, /^films\s/);
  });

  await t.test('status shows the leader, the masters and each worker with load/capacity', async () => {
    const j = await gaffer([...at, 'status', '--json']);
    ok(j);
    const s = JSON.parse(j.stdout) as StatusResult;
    const direct = await client.status();
    assert.equal(s.leader, direct.leader);
    assert.deepEqual([...s.masters].sort(), ['m1', 'm2']);
    assert.deepEqual(s.workers, direct.workers);
    assert.equal(Object.hasOwn(s, 'ok'), false, 'only the data');

    const r = await gaffer([...at, 'status']);
    ok(r);
    const out = lines(r.stdout);
    assert.match(out[0]!, new RegExp(`^LEADER\\s+${s.leader}$`));
    assert.match(out[1]!, new RegExp(`^MASTERS\\s+.*${s.leader} \\(leader\\)`));
    // The leader's counts by state (cluster.status's summary), then the workers.
    assert.match(out[2]!, new RegExp(`^RESOURCES\\s+${s.resources!.total}\\b`));
    assert.match(out[3]!, /^WORKER\s+LOAD\s+USED\s+KINDS\s+LABELS\s+FLAGS$/);
    for (const w of s.workers) {
      const pct = ((w.resources / w.capacity) * 100).toFixed(1).replace('.', '\\.');
      assert.ok(
        out.some((l) => new RegExp(`^${w.id}\\s+${w.resources}/${w.capacity}\\s+${pct}%\\s+crawl,noop$`).test(l)),
        `a row for ${w.id} in\n${r.stdout}`,
      );
    }
  });

  await t.test('rm deletes; an unknown name exits 1 with NOT_FOUND', async () => {
    const r = await gaffer([...at, 'rm', 'films']);
    ok(r);
    assert.match(lines(r.stdout)[1]!, /^films\s.*deleted$/);

    const missing = await gaffer([...at, 'rm', 'no-such-thing']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stdout, '');
    assert.match(missing.stderr, /NOT_FOUND: /);
  });

  // The CLI runs of the next two cases are independent of each other: they run
  // at once (each is a node start-up, most of its time), and are judged one by one.
  await t.test('bad usage exits 2 before anything is sent', async () => {
    const cases = [
      ['add', 'bad name'],
      ['add', '.hidden'],
      ['add', 'x', '--spec', 'not json'],
      ['add', 'x', '--spec', '{"kind":"not a kind"}'],
      ['ls', '--worker', 'a.b'],
      ['ls', '--bogus'],
      ['watch', 'nonsense'],
      ['status', '--timeout', '-1'],
    ];
    const runs = await Promise.all(cases.map((args) => gaffer([...at, ...args])));
    for (const [i, r] of runs.entries()) {
      assert.equal(r.code, 2, `${cases[i]!.join(' ')}: exit ${r.code}, ${r.stderr}`);
      assert.equal(r.stdout, '');
    }
    await assert.rejects(client.get('bad name'));
  });

  await t.test('--help works for every command and shows examples', async () => {
    const cmds = ['add', 'rm', 'get', 'restart', 'ls', 'status', 'watch', 'results', 'master', 'worker', 'dev'];
    const runs = await Promise.all(cmds.map((cmd) => gaffer([cmd, '--help'])));
    for (const [i, r] of runs.entries()) {
      ok(r);
      assert.match(r.stdout, /Examples:/, cmds[i]);
    }
  });

  await t.test('an unreachable cluster exits 3', async () => {
    const port = await freePort(); // nothing listens there
    const r = await gaffer(['--nats', `nats://127.0.0.1:${port}`, 'status']);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, '');

    // NATS is up but no master serves the subject.
    const dir = mkdtempSync(join(tmpdir(), 'gaffer-cli-'));
    const bare = await startNats({ dir });
    after(async () => {
      await bare.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const nobody = await gaffer(['--nats', bare.url, '--timeout', '1000', 'ls']);
    assert.equal(nobody.code, 3, nobody.stderr);
    assert.match(nobody.stderr, /UNAVAILABLE/);
  });

  await t.test('watch --json prints the events of an add, one JSON document per line; SIGINT exits 0', async () => {
    const child = spawn(process.execPath, [CLI_PATH, ...at, 'watch', '--json'], { env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    await waitFor('watch to subscribe', async () => stderr.includes('watching events.>'), 20000);

    const added = await client.add('watched');
    const events = await waitFor(
      'resource.placed and task.started for watched',
      async () => {
        const evs = lines(stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
        const mine = evs.filter((e) => e.name === 'watched');
        return mine.some((e) => e.kind === 'resource.placed') && mine.some((e) => e.kind === 'task.started') ? mine : undefined;
      },
      20000,
    );
    const placed = events.find((e) => e.kind === 'resource.placed')!;
    assert.equal(placed.id, added.resource.id);
    assert.equal(placed.worker, added.resource.worker);
    assert.equal(typeof placed.at, 'string');
    assert.equal(typeof placed.by, 'string');
    const started = events.find((e) => e.kind === 'task.started')!;
    assert.equal(started.worker, added.resource.worker);
    assert.equal(started.taskKind, 'noop');

    child.kill('SIGINT');
    assert.equal(await exited, 0);
  });
});
