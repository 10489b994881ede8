// ClientService registers a master as a NATS micro service (`nats micro ls`,
// `info`, `stats`) with one endpoint per subject a master serves (the client
// subjects and task.report), in the `masters` queue group. Handlers never throw (a throw becomes a bare error reply, and
// an async one kills Node 20); errors we answer ourselves, or learn of from
// the leader's acks, are counted in the endpoint's num_errors.

import type { Msg, NatsConnection, Service } from 'nats';
import { ClientSubject, MASTERS_QUEUE, WorkerSubject, type RequestSubject } from '../../protocol/subjects.js';

export const SERVICE_NAME = 'gaffer';
export const SERVICE_VERSION = '0.1.0';

/** Endpoint names may not contain dots; the subject keeps them. */
export const ENDPOINTS: ReadonlyArray<{ name: string; subject: RequestSubject }> = [
  ...Object.values(ClientSubject),
  ...Object.values(WorkerSubject),
].map((subject) => ({ name: subject.replace('.', '-'), subject }));

/** The part of nats.js's (internal) endpoint record that holds its stats; pinned to nats 2.29. */
interface EndpointInternals {
  subject: string;
  stats?: { countError(err: Error): void };
}

export class ClientService {
  private constructor(private readonly service: Service) {}

  static async start(
    nc: NatsConnection,
    id: string,
    onMessage: (subject: RequestSubject, msg: Msg) => void,
  ): Promise<ClientService> {
    const service = await nc.services.add({
      name: SERVICE_NAME,
      version: SERVICE_VERSION,
      description: 'gaffer control plane masters',
      queue: MASTERS_QUEUE,
      metadata: { role: 'master', id },
    });
    for (const e of ENDPOINTS) {
      service.addEndpoint(e.name, {
        subject: e.subject,
        handler: (err, msg) => {
          if (err) return;
          try {
            onMessage(e.subject, msg);
          } catch {
            // onMessage answers its own errors; nothing may escape into nats.js.
          }
        },
      });
    }
    return new ClientService(service);
  }

  /**
   * countError adds one to num_errors of the endpoint for `subject`. The
   * services API counts only handler throws, and our errors are answered
   * with a JSON body (often later, by the leader), so we count them here.
   */
  countError(subject: string, err: Error): void {
    const handlers = (this.service as unknown as { handlers?: EndpointInternals[] }).handlers;
    handlers?.find((h) => h.subject === subject)?.stats?.countError(err);
  }

  async stop(): Promise<void> {
    await this.service.stop().catch(() => undefined);
  }
}
