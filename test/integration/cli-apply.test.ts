// The built `gaffer` CLI's apply and diff against a real cluster: YAML and
// JSON files and stdin, a file split over several requests, the summary
// table, --json, exit codes (1 when an item is refused, 2 for a prune that
// cannot be one request), and ls with the leader's filters.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { cluster } from '../harness.js';
import { CLI_PATH } from '#devcluster/cluster.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cliEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['NATS_URL', 'NATS_USER', 'NATS_PASSWORD', 'GAFFER_LOG_LEVEL']) delete env[k];
  return env;
}

function gaffer(args: string[], stdin?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI_PATH, ...args], { env: cliEnv(), timeout: 120000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
    if (stdin !== undefined) child.stdin!.end(stdin);
  });
}

/** row finds the summary line for an outcome and returns its count. */
function count(out: string, outcome: string): string | undefined {
  return new RegExp(`^${outcome}\\s+(\\S+)$`, 'm').exec(out)?.[1];
}

test('gaffer apply and diff', async (t) => {
  const c = await cluster({ masters: 2, workers: 2 });
  await c.ready(2);
  const client = await c.client();
  const at = ['--nats', c.natsUrl, '--timeout', '30000'];
  const dir = mkdtempSync(join(tmpdir(), 'gaffer-apply-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const ok = (r: Run) => assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);

  await t.test('apply -f reads YAML documents and prints what it did; applying again changes nothing', async () => {
    const file = join(dir, 'crawls.yaml');
    writeFileSync(file, ['name: crawl-a', 'spec: { labels: { team: search } }', '---', '- name: crawl-b', '- name: crawl-c', '  spec:', '    restart: { attempts: 5 }', ''].join('\n'));
    const r = await gaffer([...at, 'apply', '-f', file]);
    ok(r);
    assert.equal(count(r.stdout, 'created'), '3');
    assert.equal(count(r.stdout, 'refused'), '0');
    assert.deepEqual((await client.list({ prefix: 'crawl-' })).map((x) => x.name), ['crawl-a', 'crawl-b', 'crawl-c']);
    const again = await gaffer([...at, 'apply', '-f', file, '--json']);
    ok(again);
    const data = JSON.parse(again.stdout) as { unchanged: number; created: number; results: Array<{ outcome: string }> };
    assert.equal(data.unchanged, 3);
    assert.equal(data.created, 0);
  });

  await t.test('diff shows creates, updates and prunes, and changes nothing', async () => {
    const file = join(dir, 'next.json');
    writeFileSync(file, JSON.stringify([{ name: 'crawl-a', spec: { labels: { team: 'search' } } }, { name: 'crawl-b', spec: { v: 2 } }, { name: 'crawl-d' }]));
    const r = await gaffer([...at, 'diff', '-f', file, '--prune-prefix', 'crawl-']);
    ok(r);
    assert.match(r.stdout, /^crawl-b\s+~ update$/m);
    assert.match(r.stdout, /^crawl-d\s+\+ create$/m);
    assert.match(r.stdout, /^crawl-c\s+- delete$/m);
    assert.doesNotMatch(r.stdout, /^crawl-a\s/m);
    assert.equal(count(r.stdout, 'would be created'), '1');
    assert.deepEqual((await client.list({ prefix: 'crawl-' })).map((x) => x.name), ['crawl-a', 'crawl-b', 'crawl-c'], 'diff changed nothing');
    // The same from stdin, for real.
    const real = await gaffer([...at, 'apply', '-f', '-', '--prune-prefix', 'crawl-'], JSON.stringify({ resources: [{ name: 'crawl-a', spec: { labels: { team: 'search' } } }, { name: 'crawl-b', spec: { v: 2 } }, { name: 'crawl-d' }] }));
    ok(real);
    assert.equal(count(real.stdout, 'pruned'), '1');
    assert.deepEqual((await client.list({ prefix: 'crawl-' })).map((x) => x.name), ['crawl-a', 'crawl-b', 'crawl-d']);
    assert.deepEqual((await client.get('crawl-b')).spec, { v: 2 });
  });

  await t.test('a refused item is listed with its code, the rest applied, and the exit code is 1', async () => {
    const file = join(dir, 'mixed.json');
    writeFileSync(file, JSON.stringify([{ name: 'mixed-ok' }, { name: 'mixed bad' }, { name: 'mixed-spec', spec: { kind: 'a.b' } }]));
    const r = await gaffer([...at, 'apply', '-f', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /^REFUSED\s+CODE\s+WHY$/m);
    assert.match(r.stdout, /^mixed bad\s+BAD_REQUEST\s+invalid name/m);
    assert.match(r.stderr, /2 of 3 resources were refused/);
    assert.equal((await client.get('mixed-ok')).name, 'mixed-ok');
  });

  await t.test('a file bigger than one request is split, in order; a prune over several requests is refused as usage', async () => {
    const file = join(dir, 'big.json');
    const items = Array.from({ length: 2500 }, (_, i) => ({ name: `big-${String(i).padStart(4, '0')}` }));
    writeFileSync(file, JSON.stringify(items));
    const refused = await gaffer([...at, 'apply', '-f', file, '--prune-prefix', 'big-']);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /--prune needs the whole set in one request/);
    const r = await gaffer([...at, 'apply', '-f', file, '--json']);
    ok(r);
    const data = JSON.parse(r.stdout) as { created: number; results: Array<{ name: string }> };
    assert.equal(data.created, 2500);
    assert.deepEqual(data.results.map((x) => x.name), items.map((x) => x.name));
    const ls = await gaffer([...at, 'ls', '--prefix', 'big-', '--limit', '5', '--json']);
    ok(ls);
    assert.deepEqual((JSON.parse(ls.stdout) as Array<{ name: string }>).map((x) => x.name), items.slice(0, 5).map((x) => x.name));
    const st = await gaffer([...at, 'status']);
    ok(st);
    assert.match(st.stdout, /RESOURCES\s+2504\b/);
  });
});
