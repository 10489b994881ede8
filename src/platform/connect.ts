// connectProcess opens what every long-running gaffer process needs: a NATS
// connection (reconnecting forever once up) and an etcd client. If either
// cannot be reached at start it fails with one clear error and leaves
// nothing open.

import type { NatsConnection } from 'nats';
import { connectBus } from './nats/bus.js';
import { DEFAULTS, type ProcessConfig } from './config.js';
import { EtcdStore } from './etcd/store.js';
import { readEtcdTls } from './etcd/tls.js';
import { keys } from '#protocol/keys.js';

export async function connectProcess(role: string, cfg: ProcessConfig): Promise<{ nc: NatsConnection; store: EtcdStore }> {
  // Read before connecting anywhere: a missing certificate is a usage error.
  const etcdTls = cfg.etcdTls ? readEtcdTls(cfg.etcdTls) : undefined;
  const nc = await connectBus({
    url: cfg.natsUrl,
    ...(cfg.natsNoRandomize ? { noRandomize: true } : {}),
    name: `gaffer-${role}-${cfg.id}`,
    user: cfg.natsUser,
    pass: cfg.natsPass,
    ...(cfg.natsTls ? { tls: cfg.natsTls } : {}),
  });
  try {
    const store = await EtcdStore.connect(cfg.etcd, {
      timeoutMs: DEFAULTS.etcdTimeoutMs,
      ...(etcdTls ? { tls: etcdTls } : {}),
      ...(cfg.etcdAuth ? { auth: cfg.etcdAuth } : {}),
      // With etcd RBAC a worker may read only its own keys: prove the login on one of them.
      ...(role === 'worker' ? { probePrefix: keys.assignments(cfg.id) } : {}),
    });
    return { nc, store };
  } catch (err) {
    await nc.close();
    throw err;
  }
}
