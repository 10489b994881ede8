// StateSource answers GET /api/state: the cluster's status (with its counts by
// state) and the first page of resources, read through the typed client like
// any other client would; the dashboard pages on through /api/resources. Browsers refetch
// after bursts of events, so concurrent fetches are coalesced: at most one
// read runs, and callers that arrive while it runs share the next one (never
// the one already running, which may predate the event they react to).

import type { NatsConnection } from 'nats';
import { GafferClient } from '#client/client.js';
import type { ListResult, Resource, StatusResult } from '#protocol/messages.js';
import type { ListFilter } from '#protocol/list-query.js';

/** Rows in the first page and in each page the dashboard asks for: a screenful many times over, and a small reply at any size. */
export const DASHBOARD_PAGE = 500;

/** DashboardState is the body of GET /api/state. */
export interface DashboardState {
  status: StatusResult;
  /** The first page, in name order. */
  resources: Resource[];
  /** Present when more resources follow: pass it as `after` to /api/resources. */
  next?: string;
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
    const [status, page] = await Promise.all([this.client.status(), this.client.page(undefined, DASHBOARD_PAGE)]);
    return { status, resources: page.resources, ...(page.next ? { next: page.next } : {}), servedBy: this.id };
  }

  /** page reads one page of resources with the leader's filters (it validates them: a bad one is BAD_REQUEST). */
  page(after: string | undefined, filter: ListFilter): Promise<ListResult> {
    return this.client.page(after, DASHBOARD_PAGE, filter);
  }
}
