// The task hosts against kinds that behave and kinds that do not: results,
// failures, forced stops, a spinning or leaking or exiting thread, the
// checkpoint and emit bridge, and loading kind modules. Real threads take
// real time, hence integration. Fixtures are plain .mjs files in the source
// tree (tsc does not copy them), found from dist/test/integration/ or any
// outDir at the same depth.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Json, TaskKind } from '#kinds/api.js';
import type { RunningTask, TaskCallbacks, TaskEnd, TaskHost, TaskStart } from '#actors/worker/runtime/host.js';
import { itemId } from '#actors/worker/runtime/context.js';
import { InlineHost } from '#actors/worker/runtime/inline-host.js';
import { ThreadHost } from '#actors/worker/runtime/thread-host.js';
import { KindModuleError, KindRegistry, loadKindModule } from '#actors/worker/runtime/kind-modules.js';

const fixture = (name: string): string => new URL(`../../../test/fixtures/kinds/${name}`, import.meta.url).href;
const OK = fixture('ok.mjs');
const BAD = fixture('bad.mjs');
const CRAWL_MODULE = new URL('../../actors/worker/kinds/crawl/module.js', import.meta.url).href;

type Kinds = Record<string, TaskKind>;
const okKinds = ((await import(OK)) as { default: Kinds }).default;
const badModule = (await import(BAD)) as { default: Kinds; seen: Record<string, { accepted: number; refused: number }> };

const START: TaskStart = { resource: { name: 'r', id: 'r1' }, spec: { a: 1 }, attempt: 1, checkpointed: undefined };

interface Rec {
  cb: TaskCallbacks;
  checkpoints: Json[];
  emits: { item: Json; id: string }[];
  progress: Json[];
  logs: { level: string; obj: Record<string, unknown>; msg: string }[];
  /** Every callback made, of any sort. */
  calls: number;
}

function recorder(checkpoint: (state: Json) => Promise<void> = async () => {}): Rec {
  const r: Rec = { checkpoints: [], emits: [], progress: [], logs: [], calls: 0, cb: undefined as unknown as TaskCallbacks };
  r.cb = {
    checkpoint: async (state) => {
      r.calls++;
      await checkpoint(state);
      r.checkpoints.push(state);
    },
    emit: async (item, id) => void (r.calls++, r.emits.push({ item, id })),
    progress: (value) => void (r.calls++, r.progress.push(value)),
    log: (level, obj, msg) => void (r.calls++, r.logs.push({ level, obj, msg })),
  };
  return r;
}

const thread = (module: string, memoryMb?: number) => (kind: string): TaskHost => new ThreadHost({ module, kind, memoryMb });
const inline = (kinds: Kinds) => (kind: string): TaskHost => new InlineHost(kinds[kind]!);
/** Both hosts, for behaviours that mean the same in each. */
const both = (module: string, kinds: Kinds): [string, (kind: string) => TaskHost][] => [
  ['thread', thread(module)],
  ['inline', inline(kinds)],
];

const run = (host: TaskHost, rec = recorder(), start = START): Promise<TaskEnd> => host.start(start, rec.cb).done;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  for (const t0 = Date.now(); !cond(); await sleep(5)) if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
}

for (const [name, host] of both(OK, okKinds)) {
  test(`${name}: echo completes with the spec, attempt and checkpoint it was given`, async () => {
    assert.deepEqual(await run(host('echo')), { kind: 'completed', result: { got: { a: 1 }, attempt: 1 } });
    const resumed = { ...START, attempt: 3, checkpointed: { page: 7 } };
    assert.deepEqual(await run(host('echo'), recorder(), resumed), {
      kind: 'completed',
      result: { got: { a: 1 }, attempt: 3, checkpointed: { page: 7 } },
    });
  });

  test(`${name}: emits, checkpoints, progress and logs reach the callbacks, with stable ids`, async () => {
    const rec = recorder();
    assert.deepEqual(await run(host('emitter'), rec), { kind: 'completed', result: { emitted: 3 } });
    assert.deepEqual(rec.emits, [
      { item: { n: 1 }, id: 'first' },
      { item: { n: 2, tags: ['a', 'b'] }, id: itemId({ tags: ['a', 'b'], n: 2 }) },
      { item: { b: 1, a: 2 }, id: createHash('sha256').update('{"a":2,"b":1}').digest('hex') },
    ]);
    assert.deepEqual(rec.checkpoints, [{ emitted: 3 }]);
    assert.deepEqual(rec.progress, [{ emitted: 3 }]);
    assert.deepEqual(rec.logs, [
      { level: 'info', obj: { emitted: 3 }, msg: 'emitter done' },
      { level: 'warn', obj: {}, msg: 'plain message' },
    ]);
  });

  test(`${name}: a refused checkpoint and values that are not JSON reject in the kind`, async () => {
    const rec = recorder(async () => {
      throw new Error('CheckpointRefused: not the owner');
    });
    const end = await run(host('refused'), rec);
    assert.equal(end.kind, 'completed');
    const out = (end as { result: Record<string, string> }).result;
    assert.equal(out.checkpoint, 'CheckpointRefused: not the owner');
    assert.match(out.map!, /^checkpoint is not JSON: a Map at \$/);
    assert.match(out.bigint!, /^emitted item is not JSON: a BigInt at \$\.x/);
    assert.match(out.badId!, /emit id must be a non-empty string/);
    assert.equal(rec.emits.length, 0);
  });

  test(`${name}: a kind that honours its signal stops unforced`, async () => {
    const task = host('waits').start(START, recorder().cb);
    await sleep(20);
    assert.deepEqual(await task.stop(2000), { kind: 'stopped', forced: false });
    assert.deepEqual(await task.stop(2000), { kind: 'stopped', forced: false }, 'stop is idempotent');
  });
}

for (const [name, host] of both(BAD, badModule.default)) {
  test(`${name}: throwing fails the attempt with the message`, async () => {
    assert.deepEqual(await run(host('throws')), { kind: 'failed', error: 'boom' });
    assert.deepEqual(await run(host('throwsString')), { kind: 'failed', error: 'a bare string' });
  });

  test(`${name}: a result that is not JSON, or too big, fails the attempt`, async () => {
    const nonJson = await run(host('nonJson'));
    assert.equal(nonJson.kind, 'failed');
    assert.match((nonJson as { error: string }).error, /^result is not JSON: a function at \$\.fn/);
    assert.deepEqual(await run(host('huge')), { kind: 'failed', error: `result is ${100 * 1024 + 2} bytes; the limit is 65536` });
  });

  test(`${name}: a deaf kind is stopped by force after the grace`, async () => {
    const task = host('deaf').start(START, recorder().cb);
    await sleep(20);
    assert.deepEqual(await task.stop(100), { kind: 'stopped', forced: true });
  });

  test(`${name}: calls after the attempt ended are refused and never reach the callbacks`, async () => {
    const rec = recorder();
    const task = host('lateCalls').start(START, rec.cb);
    await sleep(20);
    assert.deepEqual(await task.stop(2000), { kind: 'stopped', forced: false });
    const calls = rec.calls;
    await sleep(100);
    assert.equal(rec.calls, calls);
    assert.equal(calls, 0);
  });
}

test('inline: late calls see rejections; a forced stop closes the context of a kind still running', async () => {
  const { seen } = badModule;
  seen.lateCalls = { accepted: 0, refused: 0 };
  const late = new InlineHost(badModule.default.lateCalls!).start(START, recorder().cb);
  assert.deepEqual(await late.stop(1000), { kind: 'stopped', forced: false });
  await until(() => seen.lateCalls!.refused >= 20, 'the late calls');
  assert.deepEqual(seen.lateCalls, { accepted: 0, refused: 20 });

  const rec = recorder();
  const task = new InlineHost(badModule.default.chatty!).start(START, rec.cb);
  await until(() => rec.emits.length >= 2, 'chatty to emit');
  assert.deepEqual(await task.stop(10), { kind: 'stopped', forced: true });
  const emitted = rec.emits.length;
  await until(() => seen.chatty!.accepted + seen.chatty!.refused >= 40, 'chatty to finish');
  assert.equal(rec.emits.length, emitted, 'no emit reached the callbacks after the forced stop');
  assert.deepEqual(seen.chatty, { accepted: emitted, refused: 40 - emitted });
});

test('thread: a spinning kind does not block the event loop, and stop terminates it', async () => {
  const rec = recorder();
  const task = thread(BAD)('spin').start(START, rec.cb);
  await until(() => rec.logs.some((l) => l.msg === 'spinning'), 'the spin to start');
  await sleep(50);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  await sleep(100);
  clearInterval(timer);
  assert.ok(ticks > 0, 'the main event loop kept running');
  assert.deepEqual(await task.stop(100), { kind: 'stopped', forced: true });
});

test('thread: a kind whose module top level never returns is stopped by force', async () => {
  const task = thread(fixture('tophang.mjs'))('never').start(START, recorder().cb);
  await sleep(50);
  assert.deepEqual(await task.stop(100), { kind: 'stopped', forced: true });
});

test('thread: running out of memory fails the attempt, not the process', async () => {
  const end = await run(thread(BAD, 32)('leak'));
  assert.deepEqual(end, { kind: 'failed', error: "the task ran out of memory (the thread's heap limit is 32 MB)" });
});

test('thread: process.exit in a kind ends only its thread', async () => {
  const end = await run(thread(BAD)('exits'));
  assert.equal(end.kind, 'failed');
  assert.match((end as { error: string }).error, /exited with code 3 before run returned/);
});

test('thread: what the thread posts directly is checked again by the host', async () => {
  const rec = recorder();
  const end = await run(thread(BAD)('rogue'), rec);
  assert.equal(end.kind, 'failed');
  assert.match((end as { error: string }).error, /^result is not JSON: a Date at \$\.when/);
  assert.deepEqual(rec.checkpoints, [{ fine: true }], 'only the valid checkpoint, and none after done');
  assert.deepEqual(rec.emits, []);
  assert.deepEqual(rec.logs, [{ level: 'info', obj: { value: 'not an object' }, msg: '12' }]);
});

test('thread: console output is forwarded as log lines', async () => {
  const rec = recorder();
  assert.deepEqual(await run(thread(OK)('prints'), rec), { kind: 'completed', result: null });
  await until(() => rec.logs.length >= 2, 'both lines');
  assert.deepEqual(
    rec.logs.sort((a, b) => a.msg.localeCompare(b.msg)),
    [
      { level: 'warn', obj: { stream: 'stderr' }, msg: 'hello from stderr' },
      { level: 'info', obj: { stream: 'stdout' }, msg: 'hello from stdout' },
    ],
  );
});

test('thread: a kind missing from its module fails with a clear message', async () => {
  const end = await run(thread(OK)('nosuch'));
  assert.equal(end.kind, 'failed');
  assert.match((end as { error: string }).error, /has no kind "nosuch"/);
});

test('loadKindModule lists the kinds of a module without importing it here', async () => {
  const cwd = fileURLToPath(new URL('.', OK));
  assert.deepEqual(await loadKindModule('./ok.mjs', cwd), { module: OK, kinds: ['echo', 'emitter', 'prints', 'refused', 'waits'] });
  assert.deepEqual((await loadKindModule(fileURLToPath(BAD))).kinds.length, Object.keys(badModule.default).length);
});

test('loadKindModule: each failure has its code', async () => {
  const cwd = fileURLToPath(new URL('.', OK));
  const code = (spec: string, timeoutMs?: number): Promise<string> =>
    loadKindModule(spec, cwd, timeoutMs).then(
      () => 'loaded',
      (err: unknown) => (assert.ok(err instanceof KindModuleError, String(err)), err.code),
    );
  assert.equal(await code('./missing.mjs'), 'NOT_FOUND');
  assert.equal(await code('no-such-package-gaffer-test'), 'NOT_FOUND');
  assert.equal(await code('./notkinds.mjs'), 'NO_KINDS');
  assert.equal(await code('./norun.mjs'), 'NO_KINDS');
  assert.equal(await code('./topthrow.mjs'), 'LOAD_FAILED');
  assert.equal(await code('./tophang.mjs', 1000), 'TIMEOUT');
  await assert.rejects(loadKindModule('./topthrow.mjs', cwd), /top-level boom/);
});

test('KindRegistry maps names to hosts and refuses a name defined twice', async () => {
  const cwd = fileURLToPath(new URL('.', OK));
  const builtin = { name: 'noop', host: new InlineHost({ run: () => undefined }) };
  const reg = await KindRegistry.load(['./ok.mjs'], [builtin], { cwd });
  assert.deepEqual(reg.kinds(), ['echo', 'emitter', 'noop', 'prints', 'refused', 'waits']);
  assert.equal(reg.host('noop'), builtin.host);
  assert.ok(reg.host('echo') instanceof ThreadHost);
  assert.equal(reg.host('nosuch'), undefined);
  assert.deepEqual(await run(reg.host('echo')!), { kind: 'completed', result: { got: { a: 1 }, attempt: 1 } });
  await assert.rejects(KindRegistry.load(['./ok.mjs', './dup.mjs'], [], { cwd }), /task kind "echo" is defined twice/);
  assert.throws(() => new KindRegistry([], [builtin, builtin]), /"noop" is defined twice/);
});

test('the built-in crawl kind loads and runs through a ThreadHost', async () => {
  const mod = await loadKindModule(fileURLToPath(CRAWL_MODULE));
  assert.deepEqual(mod.kinds, ['crawl']);
  const end = await run(new ThreadHost({ module: mod.module, kind: 'crawl' }), recorder(), { ...START, spec: { nope: 1 } });
  assert.equal(end.kind, 'failed', 'a bad spec fails inside the thread');
});
