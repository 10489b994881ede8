// Terms: when did the old leader's term end, in etcd revisions? Every leader
// write is fenced on its election key, so once that key is deleted at
// revision R, any add committed at a revision above R was committed by a later
// leader. That lets a failover probe tell "the old leader still draining"
// from "the new leader serving".

import { performance } from 'node:perf_hooks';
import { keys } from '#protocol/keys.js';
import { EtcdStore } from '#platform/etcd/store.js';

export interface TermEnd {
  /** The revision at which the leader's election key was deleted, once seen. */
  revision(): number | undefined;
  /** performance.now() when the deletion was seen (NaN until then). */
  at(): number;
  close(): Promise<void>;
}

/** watchTermEnd finds the election key of `leaderId` (the oldest one with that id) and watches for its deletion. */
export async function watchTermEnd(etcdEndpoints: string, leaderId: string): Promise<TermEnd> {
  const store = await EtcdStore.connect(etcdEndpoints.split(','), { timeoutMs: 5000 });
  try {
    const snap = await store.range(keys.electionPrefix);
    const mine = snap.kvs
      .filter((kv) => Buffer.from(kv.value).toString() === leaderId)
      .sort((a, b) => a.createRevision - b.createRevision)[0];
    if (!mine) throw new Error(`no election key for ${leaderId}`);
    let rev: number | undefined;
    let at = NaN;
    const w = store.watch(
      keys.electionPrefix,
      snap.revision + 1,
      (events) => {
        for (const ev of events) {
          if (ev.type === 'delete' && ev.kv.key === mine.key && rev === undefined) {
            rev = ev.kv.modRevision;
            at = performance.now();
          }
        }
      },
      () => undefined, // a canceled watch leaves revision() undefined; the probe then times out and says so
    );
    return {
      revision: () => rev,
      at: () => at,
      close: async () => {
        await w.close();
        store.close();
      },
    };
  } catch (err) {
    store.close();
    throw err;
  }
}
