// ParkedRequests keeps client requests while no leader is known, each for at
// most waitMs; a leader's arrival takes them all out again. A request that
// waits too long is handed to onExpire, which answers it. ("Parked", not
// "held": a hold is an assignment waiting on its handoff's old owner.)

import type { ClientRequest } from '#protocol/request.js';
import type { Clock, Timer } from '#platform/clock.js';

interface Parked {
  req: ClientRequest;
  timer: Timer;
}

export class ParkedRequests {
  private parked: Parked[] = [];

  constructor(
    private readonly clock: Clock,
    readonly waitMs: number,
    private readonly onExpire: (req: ClientRequest) => void,
  ) {}

  get size(): number {
    return this.parked.length;
  }

  park(req: ClientRequest): void {
    const p: Parked = {
      req,
      timer: this.clock.after(this.waitMs, () => {
        this.parked = this.parked.filter((x) => x !== p);
        this.onExpire(req);
      }),
    };
    this.parked.push(p);
  }

  /** take empties the queue, oldest first, without answering anything. */
  take(): ClientRequest[] {
    const parked = this.parked;
    this.parked = [];
    for (const p of parked) p.timer.cancel();
    return parked.map((p) => p.req);
  }
}
