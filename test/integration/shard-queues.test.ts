// The shard queues on a real JetStream: a consumer that delivers nothing of
// what its subject holds (as nats-server 2.9.10 leaves one after resetting a
// clustered stream: it believes it delivered past the stream's last
// sequence) is found by the inbox, deleted, and the inbox opened again gets
// every stored item; a consumer with an item out to a holder is left alone,
// unless more items are stored than it has left to deliver and out;
// a count taken while the stream's sequence went back is refused once, and
// one that finds the stream missing is refused and says so; an item that
// says it was sent for another resource is dropped.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, headers as natsHeaders, type NatsConnection } from 'nats';
import { startNats, waitFor, type NatsServer } from '#devcluster/servers.js';
import { consumerName, ensureShardsStream, QueueCounter, ShardQueues, type ShardInbox } from '#platform/nats/shard-queues.js';
import { UnavailableError } from '#protocol/errors.js';
import { Header, SHARDS_STREAM, subjects } from '#protocol/subjects.js';

const STUCK_MS = 1500;

describe('shard queues on JetStream', () => {
  let dir: string;
  let server: NatsServer;
  let nc: NatsConnection;
  let queues: ShardQueues;
  const inboxes: ShardInbox[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gaffer-shard-queues-'));
    server = await startNats({ dir: join(dir, 'nats') });
    nc = await connect({ servers: server.url, reconnect: false });
    await ensureShardsStream(nc);
    queues = new ShardQueues(nc);
  });
  after(async () => {
    for (const i of inboxes) i.close(true);
    await nc?.close().catch(() => undefined);
    await server?.stop();
    if (dir && process.env.GAFFER_KEEP_LOGS !== '1') rmSync(dir, { recursive: true, force: true });
  });

  /** drain takes items from an inbox, opening it again whenever it has ended, until `want` came. */
  async function drain(id: string, want: number, open?: ShardInbox): Promise<{ items: unknown[]; opened: number }> {
    const items: unknown[] = [];
    let opened = 0;
    let inbox: ShardInbox | undefined = open;
    await waitFor(`${want} items`, async () => {
      if (!inbox || inbox.ended) {
        inbox = await queues.inbox(id, 0, { stuckAfterMs: STUCK_MS });
        inboxes.push(inbox);
        opened++;
      }
      const got = await inbox.next(500);
      if (got) {
        items.push(got.item);
        got.msg.ack();
      }
      return items.length >= want || undefined;
    }, 30_000, 1);
    return { items, opened };
  }

  it('a consumer that delivers nothing of what is stored is deleted, and the inbox opened again gets every item', async () => {
    const id = 'ahead';
    const first = await queues.inbox(id, 0, { stuckAfterMs: STUCK_MS });
    inboxes.push(first);
    // A broken state a test can make (a work-queue stream takes only deliver-all
    // consumers, so not one that starts past the stream): the shard's durable
    // consumer, under the open inbox, comes to deliver none of what its subject holds.
    const jsm = await nc.jetstreamManager();
    await jsm.consumers.update(SHARDS_STREAM, consumerName(id, 0), { filter_subject: subjects.shardQueue(id, 9) });
    for (let i = 0; i < 5; i++) await queues.send(id, 0, `i${i}`, { n: i });
    const { items, opened } = await drain(id, 5, first);
    assert.deepEqual(items.map((x) => (x as { n: number }).n).sort(), [0, 1, 2, 3, 4]);
    assert.equal(opened, 1, 'the broken inbox ended, and one opened on a new consumer got everything');
  });

  it('a consumer with an item out to a holder is not taken for broken', async () => {
    const id = 'held';
    await queues.send(id, 0, 'only', { n: 1 });
    const holder = await queues.inbox(id, 0, { stuckAfterMs: STUCK_MS });
    inboxes.push(holder);
    const got = await waitFor('the item', () => holder.next(500), 10_000, 1);
    assert.deepEqual(got.item, { n: 1 });
    // Held, never acknowledged: the subject holds it, and pulls bring nothing for longer than STUCK_MS.
    const other = await queues.inbox(id, 0, { stuckAfterMs: STUCK_MS });
    inboxes.push(other);
    const until = Date.now() + 3 * STUCK_MS;
    while (Date.now() < until) assert.equal(await other.next(500), undefined);
    assert.equal(other.ended, false, 'still pulling on the same consumer');
    const jsm = await nc.jetstreamManager();
    assert.equal((await jsm.consumers.info(SHARDS_STREAM, consumerName(id, 0))).num_ack_pending, 1);
    got.msg.ack();
  });

  it('a consumer with an item out that no longer sees the other items stored is repaired, and every item comes again', async () => {
    const id = 'ghosts';
    await queues.send(id, 0, 'out', { n: 0 });
    const holder = await queues.inbox(id, 0, { stuckAfterMs: STUCK_MS });
    inboxes.push(holder);
    const got = await waitFor('the item', () => holder.next(500), 10_000, 1);
    assert.deepEqual(got.item, { n: 0 });
    // As after a reset that brought back items the consumer had acknowledged: stored, below what it delivers.
    const jsm = await nc.jetstreamManager();
    await jsm.consumers.update(SHARDS_STREAM, consumerName(id, 0), { filter_subject: subjects.shardQueue(id, 9) });
    for (let i = 1; i < 4; i++) await queues.send(id, 0, `g${i}`, { n: i });
    // Kept alive, as a shard keeps what it holds: out the whole time.
    const keep = setInterval(() => got.msg.working(), 1000);
    try {
      await waitFor('the inbox to end on a repaired consumer', async () => holder.ended || undefined, 30_000, 100);
    } finally {
      clearInterval(keep);
    }
    const { items } = await drain(id, 4);
    assert.deepEqual(items.map((x) => (x as { n: number }).n).sort(), [0, 1, 2, 3], 'the one that was out comes again with the rest');
  });

  it('an item that says it was sent for another resource is dropped; the resource\'s own come through', async () => {
    const id = 'mine';
    const js = nc.jetstream();
    const h = natsHeaders();
    h.set(Header.resourceId, 'someone-else');
    await js.publish(subjects.shardQueue(id, 0), new TextEncoder().encode(JSON.stringify({ n: -1 })), { headers: h });
    await queues.send(id, 0, 'own', { n: 1 });
    const { items } = await drain(id, 1);
    assert.deepEqual(items, [{ n: 1 }]);
    const jsm = await nc.jetstreamManager();
    await waitFor('the foreign item to be gone', async () => {
      const st = await jsm.streams.info(SHARDS_STREAM, { subjects_filter: subjects.shardQueue(id, 0) });
      return (((st.state.subjects ?? {}) as Record<string, number>)[subjects.shardQueue(id, 0)] ?? 0) === 0 || undefined;
    }, 10_000, 100);
  });

  it('a count finding the stream missing is refused and says so, so a master creates it again', async () => {
    let told = 0;
    const counter = new QueueCounter(nc, undefined, () => told++);
    for (const i of inboxes.splice(0)) i.close(true);
    const jsm = await nc.jetstreamManager();
    await jsm.streams.delete(SHARDS_STREAM);
    await assert.rejects(counter.count('gone', 2), (e) => e instanceof UnavailableError);
    assert.equal(told, 1);
    await ensureShardsStream(nc);
    assert.deepEqual(await counter.count('gone', 2), [0, 0]);
  });

  it('a count is refused once when the stream went back (reset or recreated), then taken from the new base', async () => {
    const counter = new QueueCounter(nc);
    await queues.send('count', 1, 'a', { n: 1 });
    assert.deepEqual(await counter.count('count', 2), [0, 1]);
    for (const i of inboxes.splice(0)) i.close(true);
    const jsm = await nc.jetstreamManager();
    await jsm.streams.delete(SHARDS_STREAM);
    await ensureShardsStream(nc);
    await assert.rejects(counter.count('count', 2), (e) => e instanceof UnavailableError && /went back/.test(e.message));
    assert.deepEqual(await counter.count('count', 2), [0, 0]);
  });
});
