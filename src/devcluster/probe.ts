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
