// StateSource answers GET /api/state: the cluster's status and every resource,
// read through the typed client like any other client would. Browsers refetch
// after bursts of events, so concurrent fetches are coalesced: at most one
// read runs, and callers that arrive while it runs share the next one (never
// the one already running, which may predate the event they react to).

import type { NatsConnection } from 'nats';
import { GafferClient } from '#client/client.js';
import type { Resource, StatusResult } from '#protocol/messages.js';

/** DashboardState is the body of GET /api/state. */
export interface DashboardState {
  status: StatusResult;
  resources: Resource[];
  /** The master that answered (every master serves the same view). */
  servedBy: string;
}

export class StateSource {
  private readonly client: GafferClient;
  private running: Promise<DashboardState> | undefined;
  private queued: Promise<DashboardState> | undefined;

  constructor(nc: NatsConnection, private readonly id: string, timeoutMs = 5000) {
    this.client = new GafferClient(nc, { timeoutMs });
  }

  /** fetch reads status and resources; it rejects with the client's typed GafferError. */
  fetch(): Promise<DashboardState> {
    if (!this.running) return this.start();
    const after = this.running.then(
      () => undefined,
      () => undefined,
    );
    return (this.queued ??= after.then(() => {
      this.queued = undefined;
      return this.start();
    }));
  }

  private start(): Promise<DashboardState> {
    const p = this.load();
    this.running = p;
    const done = () => {
      if (this.running === p) this.running = undefined;
    };
    p.then(done, done);
    return p;
  }

  private async load(): Promise<DashboardState> {
    const [status, resources] = await Promise.all([this.client.status(), this.client.list()]);
    return { status, resources, servedBy: this.id };
  }
}
