// QueuedReports keeps at most one task-report request per worker
// incarnation in the leader's mailbox. A worker sends its reports one request
// at a time and puts whatever was not answered back at the front of the next
// (actors/worker/runtime/reporter.ts), so once a newer request from the same
// incarnation arrives, the worker has given up on the earlier one and the
// newer one carries its reports again. The newer takes the earlier one's
// place in the mailbox, and the earlier one is answered as superseded
// (replies.ts supersededAnswer).
//
// Without it, a leader that falls behind holds a copy of every worker's
// reports per re-send: in a million-bench run, 37,645 queued report requests
// (2.3M reports, about 700 MB) from 1,000 workers after a mass move.

import type { ClientRequest } from '#protocol/request.js';

/** A mailbox message that carries a client request; the slot's request may be replaced while it waits. */
export interface RequestSlot {
  kind: 'client';
  req: ClientRequest;
}

export class QueuedReports {
  private readonly waiting = new Map<string, RequestSlot>();

  /**
   * offer: when `slot` is a report request and an earlier one of the same
   * worker incarnation still waits, the earlier slot takes the new request
   * (keeping its place) and the earlier request is returned, to be answered
   * as superseded;
   * `slot` is then not to be queued. Otherwise `slot` is remembered (if a
   * report) and undefined returned: queue it.
   */
  offer(slot: RequestSlot): ClientRequest | undefined {
    const key = reporter(slot.req);
    if (key === undefined) return undefined;
    const earlier = this.waiting.get(key);
    if (!earlier) {
      this.waiting.set(key, slot);
      return undefined;
    }
    const old = earlier.req;
    earlier.req = slot.req;
    return old;
  }

  /** taken: these slots left the mailbox; a report from their workers queues anew. */
  taken(slots: Iterable<{ kind: string }>): void {
    for (const s of slots) {
      if (s.kind !== 'client') continue;
      const key = reporter((s as RequestSlot).req);
      if (key !== undefined && this.waiting.get(key) === s) this.waiting.delete(key);
    }
  }

  clear(): void {
    this.waiting.clear();
  }
}

function reporter(req: ClientRequest): string | undefined {
  const c = req.command;
  return c.op === 'report' ? `${c.worker}\u0000${c.epoch}` : undefined;
}
