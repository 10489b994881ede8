// ShardIo (actors/worker/runtime/shard-io.ts), on a fake clock and fake
// queues: what a shard reports as its activity, and the rules the leader's
// completion check relies on: an ack waits for earlier sends, a shard that
// has been idle sends only while it holds an item, nothing goes out once the
// attempt is not owned, and a clean stop hands held items back.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ShardIo, type HeldMsg, type ShardQueuesPort } from '#actors/worker/runtime/shard-io.js';
import { FakeClock } from '../fakes/clock.js';
import { alive } from '../fakes/gc.js';

class FakeMsg implements HeldMsg {
  acked = false;
  naked = false;
  workingCalls = 0;
  /** What ackAck rejects with (JetStream did not confirm), if set. */
  ackFails: Error | undefined;
  ackAck(): Promise<boolean> {
    if (this.ackFails) return Promise.reject(this.ackFails);
    this.acked = true;
    return Promise.resolve(true);
  }
  working(): void {
    this.workingCalls++;
  }
  nak(): void {
    this.naked = true;
  }
  term(): void {}
}

/** FakeQueues delivers what a test puts in `waiting`, and holds each send until the test settles it. */
class FakeQueues implements ShardQueuesPort {
  readonly waiting: Array<{ item: unknown; msg: FakeMsg }> = [];
  readonly sent: Array<{ index: number; id: string; item: unknown; settle: () => void }> = [];
  private wake: (() => void) | undefined;
  send(_rid: string, index: number, id: string, item: unknown): Promise<unknown> {
    return new Promise((resolve) => this.sent.push({ index, id, item, settle: () => resolve(undefined) }));
  }
  inbox() {
    return Promise.resolve({
      next: async () => {
        if (this.waiting.length === 0) await new Promise<void>((r) => (this.wake = r));
        return this.waiting.shift();
      },
    });
  }
  put(item: unknown): FakeMsg {
    const msg = new FakeMsg();
    this.waiting.push({ item, msg });
    this.wake?.();
    return msg;
  }
}

const tick = () => new Promise((r) => setImmediate(r));

function setup() {
  const clock = new FakeClock();
  const queues = new FakeQueues();
  const reports: Array<{ idle: boolean; seq: number }> = [];
  const own = { yes: true };
  let seq = 0;
  const io = new ShardIo({ queues, resourceId: 'r1', index: 0, count: 2, clock, owns: () => own.yes, report: (idle, seq) => reports.push({ idle, seq }), nextSeq: () => ++seq });
  return { clock, queues, reports, own, io };
}

describe('ShardIo', () => {
  test('idle while it awaits the inbox holding nothing; busy while it holds an item; reported with a growing seq', async () => {
    const { clock, queues, reports, io } = setup();
    const first = io.next();
    await tick();
    await clock.advance(100);
    assert.deepEqual(reports.at(-1), { idle: true, seq: 1 });
    queues.put({ n: 1 });
    const got = await first;
    assert.deepEqual(got?.item, { n: 1 });
    await clock.advance(1000);
    assert.equal(reports.at(-1)!.idle, false, 'busy is said too, within a second');
    await io.ack(got!.ref);
    const second = io.next();
    await tick();
    await clock.advance(100);
    assert.equal(reports.at(-1)!.idle, true);
    assert.ok(reports.at(-1)!.seq > 1);
    io.close(false);
    queues.put(null);
    assert.equal(await second, undefined, 'the inbox ends once the attempt has ended');
  });

  test('an ack waits until every send made before it is stored', async () => {
    const { queues, io } = setup();
    const msg = queues.put({ n: 1 });
    const got = (await io.next())!;
    const sending = io.send(1, { n: 2 }, 'x');
    const acking = io.ack(got.ref);
    await tick();
    assert.equal(msg.acked, false, 'not before the send is stored');
    queues.sent[0]!.settle();
    await sending;
    await acking;
    assert.equal(msg.acked, true);
  });

  test('an ack waits for the sends made before it only, not for later ones (a shard that always sends still acks), and says whether an item was delivered before', async () => {
    const { queues, io } = setup();
    const msg = queues.put({ n: 1 });
    const got = (await io.next())!;
    assert.equal(got.redelivered, false);
    const before = io.send(1, { n: 2 }, 'x');
    const acking = io.ack(got.ref);
    const after = io.send(1, { n: 3 }, 'y');
    await tick();
    assert.equal(msg.acked, false);
    queues.sent[0]!.settle();
    await before;
    await acking;
    assert.equal(msg.acked, true, 'acknowledged while the later send is still out');
    queues.sent[1]!.settle();
    await after;
    const again = queues.put({ n: 4 });
    Object.assign(again, { redelivered: true });
    assert.equal((await io.next())!.redelivered, true);
  });

  test('an ack JetStream does not confirm (no responders while a server restarts) lets the item go instead of failing the shard; it stays stored and comes back', async () => {
    const { clock, queues, reports, io } = setup();
    const msg = queues.put({ n: 1 });
    const got = (await io.next())!;
    msg.ackFails = Object.assign(new Error('503'), { code: '503' });
    await io.ack(got.ref);
    const next = io.next();
    await tick();
    await clock.advance(100);
    assert.equal(reports.at(-1)!.idle, true, 'nothing held any more');
    await assert.rejects(io.ack(got.ref), /no such item held/);
    io.close(false);
    queues.put(null);
    await next;
  });

  test('once it has been idle, a send needs an item held', async () => {
    const { clock, queues, io } = setup();
    const seed = io.send(1, { seed: 1 }, 's1');
    queues.sent[0]!.settle();
    await seed; // before its first idle a shard sends freely
    const p = io.next();
    await tick();
    await clock.advance(100);
    await assert.rejects(io.send(1, { late: 1 }, 'late'), /sends only while it holds an item/);
    queues.put({ n: 1 });
    const got = (await p)!;
    const s = io.send(1, { derived: 1 }, 'd');
    queues.sent.at(-1)!.settle();
    await s;
    await io.ack(got.ref);
  });

  test('a busy mark (ctx.busy) keeps the shard from idle while it awaits its inbox, and lets it send after its first idle', async () => {
    const { clock, reports, queues, io } = setup();
    const p = io.next();
    await tick();
    await clock.advance(100);
    assert.equal(reports.at(-1)?.idle, true);
    io.busy(1);
    await clock.advance(100);
    assert.equal(reports.at(-1)?.idle, false, 'busy with a mark, though it holds no item');
    const s = io.send(1, { again: 1 }, 'again');
    queues.sent.at(-1)!.settle();
    await s;
    io.busy(-1);
    await clock.advance(100);
    assert.equal(reports.at(-1)?.idle, true, 'idle again once the mark is given back');
    assert.throws(() => io.busy(-1), /no busy mark held/);
    await assert.rejects(io.send(1, { late: 1 }, 'late'), /sends only while it holds an item or a busy mark/);
    io.close(false);
    await p;
  });

  test('not owned: send and ack are refused; a clean stop naks what it holds, a fence does not', async () => {
    const a = setup();
    const m1 = a.queues.put({ n: 1 });
    const got = (await a.io.next())!;
    a.own.yes = false;
    await assert.rejects(a.io.send(1, { n: 2 }, 'y'), /no longer runs here/);
    await assert.rejects(a.io.ack(got.ref), /no longer runs here/);
    assert.equal(m1.acked, false);
    a.io.close(false);
    assert.equal(m1.naked, false, 'fenced (no release): the item comes back after ack_wait, not from us');

    const b = setup();
    const m2 = b.queues.put({ n: 1 });
    await b.io.next();
    await b.clock.advance(3000);
    assert.ok(m2.workingCalls >= 1, 'a held item is kept alive');
    b.io.close(true);
    assert.equal(m2.naked, true, 'a clean stop hands it to the next owner at once');
  });

  test('items taken and acknowledged are not kept while the attempt runs (the memory does not grow with the items)', async () => {
    const { queues, io } = setup();
    const refs: Array<WeakRef<object>> = [];
    for (let i = 0; i < 200; i++) {
      refs.push(new WeakRef(queues.put({ n: i })));
      const got = (await io.next())!;
      await io.ack(got.ref);
    }
    assert.ok((await alive(refs)) <= 1, `${await alive(refs)} of 200 messages still reachable`);
    io.close(false);
  });
});
