// connectProcess opens what every long-running gaffer process needs: a NATS
// connection (reconnecting forever once up) and an etcd client. If either
// cannot be reached at start it fails with one clear error and leaves
// nothing open.

import type { NatsConnection } from 'nats';
import { connectBus } from './nats/bus.js';
import { DEFAULTS, type ProcessConfig } from './config.js';
import { EtcdStore } from './etcd/store.js';

export async function connectProcess(role: string, cfg: ProcessConfig): Promise<{ nc: NatsConnection; store: EtcdStore }> {
  const nc = await connectBus({ url: cfg.natsUrl, name: `gaffer-${role}-${cfg.id}`, user: cfg.natsUser, pass: cfg.natsPass });
  try {
    return { nc, store: await EtcdStore.connect(cfg.etcd, { timeoutMs: DEFAULTS.etcdTimeoutMs }) };
  } catch (err) {
    await nc.close();
    throw err;
  }
}
