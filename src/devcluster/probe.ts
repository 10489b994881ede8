// Is a server up? One answer for the dev cluster, the tests and the chaos run.

import { connect as tcpConnect } from 'node:net';

/** tcpOpen says whether something accepts connections on a loopback port. */
export function tcpOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ port, host }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** etcdHealthy asks an etcd member's /health endpoint; anything but a healthy answer within 1 s is false. */
export async function etcdHealthy(clientUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
    return ((await res.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

/**
 * natsHealthy asks a nats-server's monitoring /healthz: ok once it serves
 * clients and, with JetStream, knows a meta leader and has its streams
 * current (nats-server 2.9). Anything else within 1 s is false.
 */
export async function natsHealthy(monitorUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${monitorUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
    return res.ok;
  } catch {
    return false;
  }
}

/** natsConnectionNames lists the names of the clients connected to a nats-server (its /connz), or undefined if it does not answer. */
export async function natsConnectionNames(monitorUrl: string): Promise<string[] | undefined> {
  try {
    const res = await fetch(`${monitorUrl}/connz?limit=1024`, { signal: AbortSignal.timeout(1000) });
    if (!res.ok) return undefined;
    const body = (await res.json()) as { connections?: Array<{ name?: string }> };
    return (body.connections ?? []).map((c) => c.name ?? '').filter(Boolean);
  } catch {
    return undefined;
  }
}
