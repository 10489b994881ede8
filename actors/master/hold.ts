// HoldQueue keeps client requests while no leader is known, each for at most
// holdMs; a leader's arrival takes them all out again. A request that waits
// too long is handed to onExpire, which answers it.

import type { ClientRequest } from '#protocol/request.js';
import type { Clock, Timer } from '#platform/clock.js';

interface Held {
  req: ClientRequest;
  timer: Timer;
}

export class HoldQueue {
  private held: Held[] = [];

  constructor(
    private readonly clock: Clock,
    readonly holdMs: number,
    private readonly onExpire: (req: ClientRequest) => void,
  ) {}

  get size(): number {
    return this.held.length;
  }

  hold(req: ClientRequest): void {
    const h: Held = {
      req,
      timer: this.clock.after(this.holdMs, () => {
        this.held = this.held.filter((x) => x !== h);
        this.onExpire(req);
      }),
    };
    this.held.push(h);
  }

  /** take empties the queue, oldest first, without answering anything. */
  take(): ClientRequest[] {
    const held = this.held;
    this.held = [];
    for (const h of held) h.timer.cancel();
    return held.map((h) => h.req);
  }
}
