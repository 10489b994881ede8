import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Actor, ActorStatus } from '#platform/actor.js';

// No timers: the tests hold handlers open with promises they resolve themselves,
// and let queued microtasks run with `settle`.

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}
function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** settle lets every queued microtask (and the ones they queue) run, and the turns the actor yields between batches. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
};

describe('Actor', () => {
  test('status goes NotStarted -> Running -> Stopped, and nothing runs before start', async () => {
    const seen: number[] = [];
    const a = new Actor<number>((b) => void seen.push(...b));
    assert.equal(a.status, ActorStatus.NotStarted);
    assert.equal(a.send(1), true);
    await settle();
    assert.deepEqual(seen, []);
    assert.equal(a.pending, 1);
    a.start();
    assert.equal(a.status, ActorStatus.Running);
    await settle();
    assert.deepEqual(seen, [1]);
    assert.equal(a.pending, 0);
    await a.stop();
    assert.equal(a.status, ActorStatus.Stopped);
  });

  test('handles one message at a time, in order, even when the handler is async', async () => {
    let active = 0;
    let maxActive = 0;
    const order: number[] = [];
    const gates = new Map<number, Deferred>();
    const a = new Actor<number>(async ([m]) => {
      active++;
      maxActive = Math.max(maxActive, active);
      order.push(m!);
      await gates.get(m!)!.promise;
      active--;
    }).start();
    for (let i = 0; i < 5; i++) {
      gates.set(i, deferred());
      a.send(i);
    }
    await settle();
    // Only the first has started; the rest wait however long it takes.
    assert.deepEqual(order, [0]);
    assert.equal(a.pending, 4);
    // Release out of order: a later gate opening must not let its message jump ahead.
    gates.get(3)!.resolve();
    gates.get(1)!.resolve();
    await settle();
    assert.deepEqual(order, [0]);
    gates.get(0)!.resolve();
    await settle();
    // 1 was already released, so it finishes and 2 starts and blocks.
    assert.deepEqual(order, [0, 1, 2]);
    gates.get(2)!.resolve();
    gates.get(4)!.resolve();
    await settle();
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
    assert.equal(maxActive, 1);
    assert.equal(a.pending, 0);
  });

  test('defaults to batches of one', async () => {
    const batches: number[][] = [];
    const a = new Actor<number>((b) => void batches.push(b));
    for (let i = 0; i < 3; i++) a.send(i);
    a.start();
    await settle();
    assert.deepEqual(batches, [[0], [1], [2]]);
  });

  test('batches up to maxBatch of what is waiting', async () => {
    const batches: number[][] = [];
    const a = new Actor<number>((b) => void batches.push([...b]), { maxBatch: 3 });
    for (let i = 0; i < 7; i++) a.send(i);
    a.start();
    await settle();
    assert.deepEqual(batches, [[0, 1, 2], [3, 4, 5], [6]]);
  });

  test('weigh counts a message as what it carries, and a heavy message still goes alone', async () => {
    const batches: number[][] = [];
    const a = new Actor<number>((b) => void batches.push([...b]), { maxBatch: 10, weigh: (m) => m });
    for (const m of [3, 3, 3, 3, 25, 1]) a.send(m);
    a.start();
    await settle();
    assert.deepEqual(batches, [[3, 3, 3], [3], [25], [1]]);
  });

  test('timers and I/O run between batches: a long mailbox does not hold the event loop', async () => {
    const log: string[] = [];
    const a = new Actor<number>((b) => void log.push(`batch ${b[0]}`), { maxBatch: 1 });
    for (let i = 0; i < 3; i++) a.send(i);
    // Queued before the batches run; without a yield it would run only after all three.
    setImmediate(() => log.push('timer'));
    a.start();
    await settle();
    assert.deepEqual(log, ['batch 0', 'timer', 'batch 1', 'batch 2']);
  });

  test('a batch is what arrived while the previous batch ran', async () => {
    const batches: number[][] = [];
    const gate = deferred();
    const a = new Actor<number>(
      async (b) => {
        batches.push([...b]);
        if (b[0] === 0) await gate.promise;
      },
      { maxBatch: 10 },
    ).start();
    a.send(0);
    await settle();
    for (let i = 1; i <= 4; i++) a.send(i);
    await settle();
    assert.deepEqual(batches, [[0]]);
    gate.resolve();
    await settle();
    assert.deepEqual(batches, [[0], [1, 2, 3, 4]]);
  });

  test('stop waits for the batch in hand and returns what was queued, unhandled', async () => {
    const handled: number[] = [];
    const gate = deferred();
    let finished = false;
    const a = new Actor<number>(async ([m]) => {
      handled.push(m!);
      if (m === 0) {
        await gate.promise;
        finished = true;
      }
    }).start();
    a.send(0);
    await settle();
    a.send(1);
    a.send(2);
    a.send(3);
    let stopped: number[] | undefined;
    const stopping = a.stop().then((rest) => (stopped = rest));
    await settle();
    // Still blocked in message 0: stop must not return yet.
    assert.equal(stopped, undefined);
    assert.equal(a.status, ActorStatus.Stopped);
    gate.resolve();
    await stopping;
    assert.equal(finished, true);
    assert.deepEqual(stopped, [1, 2, 3]);
    assert.deepEqual(handled, [0]);
    assert.equal(a.pending, 0);
    await settle();
    assert.deepEqual(handled, [0], 'nothing is handled after stop');
  });

  test('stop before start hands back everything that was sent', async () => {
    const a = new Actor<string>(() => assert.fail('must not run'));
    a.send('a');
    a.send('b');
    assert.deepEqual(await a.stop(), ['a', 'b']);
  });

  test('a second stop returns nothing, and start after stop does not revive', async () => {
    const seen: number[] = [];
    const a = new Actor<number>((b) => void seen.push(...b));
    a.send(1);
    assert.deepEqual(await a.stop(), [1]);
    assert.deepEqual(await a.stop(), []);
    a.start();
    assert.equal(a.status, ActorStatus.Stopped);
    await settle();
    assert.deepEqual(seen, []);
  });

  test('send after stop returns false and queues nothing', async () => {
    const seen: number[] = [];
    const a = new Actor<number>((b) => void seen.push(...b)).start();
    await a.stop();
    assert.equal(a.send(1), false);
    assert.equal(a.pending, 0);
    await settle();
    assert.deepEqual(seen, []);
  });

  test('send during the stopping batch is refused: the caller must answer it', async () => {
    const gate = deferred();
    const a = new Actor<number>(async () => gate.promise).start();
    a.send(0);
    await settle();
    const stopping = a.stop();
    assert.equal(a.send(1), false);
    gate.resolve();
    assert.deepEqual(await stopping, []);
  });

  test('a throwing handler goes to onError and the actor keeps running', async () => {
    const errors: unknown[] = [];
    const seen: number[] = [];
    const a = new Actor<number>(
      async ([m]) => {
        if (m === 1) throw new Error('sync-ish one');
        if (m === 3) return Promise.reject(new Error('async three'));
        seen.push(m!);
      },
      { onError: (e) => errors.push(e) },
    ).start();
    for (let i = 0; i < 5; i++) a.send(i);
    await settle();
    assert.deepEqual(seen, [0, 2, 4]);
    assert.deepEqual(
      errors.map((e) => (e as Error).message),
      ['sync-ish one', 'async three'],
    );
    assert.equal(a.status, ActorStatus.Running);
  });

  test('a synchronous throw is caught too, and without onError the error is swallowed', async () => {
    const seen: number[] = [];
    const a = new Actor<number>(([m]) => {
      if (m === 0) throw new Error('boom');
      seen.push(m!);
    }).start();
    a.send(0);
    a.send(1);
    await settle();
    assert.deepEqual(seen, [1]);
    assert.equal(a.status, ActorStatus.Running);
  });

  test('messages sent from inside the handler are handled after it, not re-entrantly', async () => {
    const log: string[] = [];
    const a: Actor<number> = new Actor<number>(([m]) => {
      log.push(`start ${m}`);
      if (m! < 2) a.send(m! + 1);
      log.push(`end ${m}`);
    }).start();
    a.send(0);
    await settle();
    assert.deepEqual(log, ['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2']);
  });
});
