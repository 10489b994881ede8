// Task results on a real nats-server with JetStream (startNats turns it on,
// storing under its dir): the stream is ensured idempotently, even by several
// masters at once; an item is stored once however often it is emitted;
// results.a and results.a.b never mix; readResults ends, or follows until
// aborted; no stream means a fast UnavailableError; and `gaffer results`
// prints exactly what is stored.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { CLI_PATH } from '#devcluster/cluster.js';
import { cliEnv, gaffer } from '../cli-runner.js';
import { freePort, startNats, waitFor, type NatsServer } from '#devcluster/servers.js';
import {
  ensureResultsStream, MAX_MSG_ID, readResults, resultMsgId, ResultsPublisher, type ReadOptions, type ResultRecord,
} from '#platform/nats/results.js';
import { BadRequestError, NoRespondersError, UnavailableError } from '#protocol/errors.js';
import { RESULTS_STREAM } from '#protocol/subjects.js';

const DEADLINE_MS = 10000;

function deadline<T>(p: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
  let timer: NodeJS.Timeout;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** all reads every result of `name` to the end (no follow), within the deadline. */
async function all(nc: NatsConnection, name: string, opts: ReadOptions = {}): Promise<ResultRecord[]> {
  const out: ResultRecord[] = [];
  await deadline((async () => {
    for await (const r of readResults(nc, name, opts)) out.push(r);
  })(), `readResults(${name}) to end`);
  return out;
}

const lines = (s: string) => s.split('\n').filter((l) => l.length > 0);

describe('task results on JetStream', () => {
  let dir: string;
  let server: NatsServer;
  let bare: NatsServer;
  const conns: NatsConnection[] = [];
  const open = async (url: string) => {
    const nc = await connect({ servers: url, reconnect: false });
    conns.push(nc);
    return nc;
  };
  let nc: NatsConnection;
  let pub: ResultsPublisher;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gaffer-results-'));
    server = await startNats({ dir: join(dir, 'nats') });
    bare = await startNats({ dir: join(dir, 'bare') }); // JetStream on, but nobody created the stream
    nc = await open(server.url);
    pub = new ResultsPublisher(nc);
  });
  after(async () => {
    await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
    await server?.stop();
    await bare?.stop();
    if (dir && process.env.GAFFER_KEEP_LOGS !== '1') rmSync(dir, { recursive: true, force: true });
  });

  it('ensures the stream idempotently, from several masters at once', async () => {
    const masters = await Promise.all([1, 2, 3, 4].map(() => open(server.url)));
    const infos = await Promise.all(masters.flatMap((m) => [ensureResultsStream(m), ensureResultsStream(m)]));
    assert.equal(new Set(infos.map((i) => i.created)).size, 1, 'one stream, created once');
    const cfg = infos[0]!.config;
    assert.deepEqual(cfg.subjects, ['results.>']);
    assert.equal(cfg.storage, 'file');
    assert.equal(cfg.discard, 'old');
    assert.equal(cfg.duplicate_window, 10 * 60 * 1e9);
    assert.equal(cfg.num_replicas, 1);
    // A changed bound is applied to the existing stream, and changed back.
    assert.equal((await ensureResultsStream(masters[0]!, { maxBytes: 2 ** 20 })).config.max_bytes, 2 ** 20);
    const back = await ensureResultsStream(masters[1]!);
    assert.equal(back.config.max_bytes, 1024 ** 3);
    assert.equal(back.created, infos[0]!.created, 'updated in place, not recreated');
    const names: string[] = [];
    for await (const n of (await nc.jetstreamManager()).streams.names()) names.push(n);
    assert.deepEqual(names, [RESULTS_STREAM]);
    assert.ok(existsSync(join(dir, 'nats', 'jetstream')), 'the store lives in the server dir');
  });

  it('stores an emitted item with its metadata', async () => {
    const r = await pub.emit('books', 'rid-1', 'item-1', { title: 'Dune', n: 1 });
    assert.equal(r.duplicate, false);
    const got = await all(nc, 'books');
    assert.equal(got.length, 1);
    assert.equal(got[0]!.seq, r.seq);
    assert.equal(got[0]!.resourceId, 'rid-1');
    assert.equal(got[0]!.id, 'rid-1:item-1');
    assert.deepEqual(got[0]!.item, { title: 'Dune', n: 1 });
    assert.equal(new Date(got[0]!.at).toISOString(), got[0]!.at);
  });

  it('stores an item emitted twice once; the second emit says duplicate', async () => {
    const first = await pub.emit('dupes', 'rid-2', 'page-7', { v: 1 });
    const again = await pub.emit('dupes', 'rid-2', 'page-7', { v: 1 });
    assert.deepEqual(again, { duplicate: true, seq: first.seq });
    // Another incarnation of the resource (new id) is a different item.
    const other = await pub.emit('dupes', 'rid-3', 'page-7', { v: 1 });
    assert.equal(other.duplicate, false);
    assert.deepEqual((await all(nc, 'dupes')).map((r) => [r.seq, r.id]), [[first.seq, 'rid-2:page-7'], [other.seq, 'rid-3:page-7']]);
  });

  it('bounds long item ids by hashing them, and still dedupes them', async () => {
    const long = `https://example.com/${'x'.repeat(400)}`;
    const id = resultMsgId('rid-4', long);
    assert.ok(id.length <= MAX_MSG_ID, id);
    assert.equal(resultMsgId('rid-4', long), id, 'stable');
    assert.notEqual(resultMsgId('rid-4', `${long}y`), id);
    assert.notEqual(resultMsgId('rid-4', 'a\r\nb'), 'rid-4:a\r\nb', 'no line breaks in a header');
    const first = await pub.emit('longids', 'rid-4', long, 1);
    assert.equal((await pub.emit('longids', 'rid-4', long, 1)).duplicate, true);
    assert.deepEqual((await all(nc, 'longids')).map((r) => [r.seq, r.id]), [[first.seq, id]]);
  });

  it('keeps results.a and results.a.b apart', async () => {
    await pub.emit('a', 'rid-a', '1', 'a1');
    await pub.emit('a.b', 'rid-ab', '1', 'ab1');
    await pub.emit('a', 'rid-a', '2', 'a2');
    await pub.emit('a.b', 'rid-ab', '2', 'ab2');
    assert.deepEqual((await all(nc, 'a')).map((r) => r.item), ['a1', 'a2']);
    assert.deepEqual((await all(nc, 'a.b')).map((r) => r.item), ['ab1', 'ab2']);
    assert.deepEqual(await all(nc, 'a.b.c'), []);
  });

  it('reads from a given sequence, and ends at once for a name without results', async () => {
    const seqs = (await all(nc, 'a')).map((r) => r.seq);
    assert.deepEqual((await all(nc, 'a', { from: seqs[1]! })).map((r) => r.item), ['a2']);
    assert.deepEqual(await all(nc, 'never-emitted'), []);
  });

  it('follows new results until aborted', async () => {
    await pub.emit('live', 'rid-l', 'old', 'old');
    const ac = new AbortController();
    const seen: unknown[] = [];
    const reading = (async () => {
      for await (const r of readResults(nc, 'live', { follow: true, signal: ac.signal })) seen.push(r.item);
    })();
    await waitFor('the stored result', async () => seen.includes('old'));
    await pub.emit('live', 'rid-l', 'new', 'new');
    await pub.emit('other', 'rid-o', 'new', 'not mine');
    await waitFor('the new result', async () => seen.includes('new'));
    ac.abort();
    await deadline(reading, 'the follow to end on abort');
    assert.deepEqual(seen, ['old', 'new']);
  });

  it('refuses items that cannot be stored as JSON, and bad names', async () => {
    await assert.rejects(pub.emit('books', 'rid-1', 'big', 10n), BadRequestError);
    await assert.rejects(pub.emit('books', 'rid-1', 'undef', undefined), BadRequestError);
    await assert.rejects(pub.emit('bad name', 'rid-1', 'x', 1), BadRequestError);
    await assert.rejects(pub.emit('books', 'rid-1', 'x'.repeat(10), 'y'.repeat(2 * 1024 * 1024)), BadRequestError);
  });

  it('fails fast with UnavailableError when no stream exists', async () => {
    const other = await open(bare.url);
    // A timeout far beyond the deadline: only an immediate "no responders" passes.
    const slow = new ResultsPublisher(other, { timeoutMs: 120000 });
    await deadline(
      assert.rejects(slow.emit('books', 'rid-1', 'x', 1), (err) => err instanceof NoRespondersError && err instanceof UnavailableError),
      'emit to fail',
    );
    await deadline(assert.rejects(all(other, 'books', { timeoutMs: 120000 }), UnavailableError), 'read to fail');
  });

  describe('gaffer results', () => {
    it('prints exactly the stored results with --json, one per line', async () => {
      const stored = await all(nc, 'a');
      const r = await gaffer(['--nats', server.url, 'results', 'a', '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(r.stdout).map((l) => JSON.parse(l) as ResultRecord), stored);
    });

    it('prints one line per result for people', async () => {
      const r = await gaffer(['--nats', server.url, 'results', 'a.b']);
      assert.equal(r.code, 0, r.stderr);
      const out = lines(r.stdout);
      assert.equal(out.length, 2);
      assert.match(out[0]!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} {2}rid-ab {2}"ab1"$/);
    });

    it('exits 0 with a note for a name without results, 2 for an invalid name, 3 when NATS is unreachable', async () => {
      const none = await gaffer(['--nats', server.url, 'results', 'nothing-here']);
      assert.equal(none.code, 0, none.stderr);
      assert.equal(none.stdout, '');
      assert.match(none.stderr, /no results for nothing-here/);
      const bad = await gaffer(['--nats', server.url, 'results', 'bad name']);
      assert.equal(bad.code, 2, bad.stderr);
      const down = await gaffer(['--nats', `nats://127.0.0.1:${await freePort()}`, 'results', 'a']);
      assert.equal(down.code, 3, down.stderr);
    });

    it('--follow prints new results until SIGINT, then exits 0', async () => {
      const child = spawn(process.execPath, [CLI_PATH, '--nats', server.url, 'results', 'tail', '--follow', '--json'], {
        env: cliEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      after(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
      child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      await waitFor('the follow to start', async () => stderr.includes('following results.tail'), DEADLINE_MS);
      const { seq } = await pub.emit('tail', 'rid-t', '1', { live: true });
      const printed = await waitFor('the new result on stdout', async () => lines(stdout)[0], DEADLINE_MS);
      assert.deepEqual(JSON.parse(printed), (await all(nc, 'tail')).find((r) => r.seq === seq));
      child.kill('SIGINT');
      assert.equal(await deadline(exited, 'the CLI to exit on SIGINT'), 0, stderr);
    });
  });

  // Last: the connections above do not reconnect.
  it('keeps results across a server restart (the store dir stays)', async () => {
    const stored = await all(nc, 'books');
    assert.ok(stored.length > 0);
    await server.restart();
    const again = await open(server.url);
    assert.deepEqual(await all(again, 'books'), stored);
  });
});
