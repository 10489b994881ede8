// etcd RBAC for gaffer: the role each kind of process gets, and turning auth
// on for a cluster (users, roles, then `auth enable`), idempotently.
// `gaffer dev --secure` and the tests call setupEtcdAuth; docker-compose.yml
// runs this file once as a one-shot service (etcd-init), configured by its
// environment (main, at the bottom).
//
// What etcd 3.4 checks (each checked against 3.4.23):
// - put, delete and txn need write permission on every key they write, and
//   read permission on every key a txn compares or reads;
// - LeaseGrant and LeaseKeepAlive need no permission at all (not even a
//   login), LeaseLeases lists every lease and LeaseTimeToLive names any
//   lease's keys;
// - LeaseRevoke needs write permission on every key attached to the lease,
//   so a worker can revoke its own lease (its registration) and nobody
//   else's lease that holds a key; a lease with no keys anyone may revoke.

import { pathToFileURL } from 'node:url';
import { Etcd3, EtcdRoleExistsError, EtcdUserExistsError, Range } from 'etcd3';
import { keys } from '#protocol/keys.js';
import { readEtcdTls, type EtcdTls } from '#platform/etcd/tls.js';
import { parseEndpoints } from '#platform/config.js';

export type Permission = 'Read' | 'Write' | 'Readwrite';

/** Grant: a permission on one key, or on every key under a prefix. */
export type Grant = { permission: Permission; key: string } | { permission: Permission; prefix: string };

/** Everything gaffer keeps in etcd is under this prefix. */
export const GAFFER_PREFIX = keys.root;

/**
 * etcdRoles: what each identity may touch. Masters own gaffer/ (the leader
 * writes resources, assignments, checkpoints and its fenced transactions;
 * every master campaigns under gaffer/election/). A worker writes only its
 * registration, on its own lease, and reads its assignments and checkpoints.
 */
export const etcdRoles = {
  master: (): Grant[] => [{ permission: 'Readwrite', prefix: GAFFER_PREFIX }],
  /** One worker id: nothing of any other worker's. */
  worker: (id: string): Grant[] => [
    { permission: 'Readwrite', key: keys.worker(id) },
    { permission: 'Read', prefix: keys.assignments(id) },
    { permission: 'Read', prefix: keys.checkpointsPrefix },
  ],
  /**
   * Any worker id, for replicas whose ids are generated (compose --scale):
   * it can read every worker's assignments and write any registration.
   */
  anyWorker: (): Grant[] => [
    { permission: 'Readwrite', prefix: keys.workersPrefix },
    { permission: 'Read', prefix: keys.assignmentsPrefix },
    { permission: 'Read', prefix: keys.checkpointsPrefix },
  ],
} as const;

/** EtcdAccount is one user; without grants it has no role (e.g. a health checker). */
export interface EtcdAccount {
  user: string;
  password: string;
  role?: string;
  grants?: Grant[];
}

/** gafferAccounts: `master`, the shared `worker`, one `worker-<id>` per fixed id, and an optional `health`. */
export function gafferAccounts(p: { master: string; worker?: string; workers?: Record<string, string>; health?: string }): EtcdAccount[] {
  const out: EtcdAccount[] = [{ user: 'master', password: p.master, role: 'gaffer-master', grants: etcdRoles.master() }];
  if (p.worker) out.push({ user: 'worker', password: p.worker, role: 'gaffer-worker', grants: etcdRoles.anyWorker() });
  for (const [id, password] of Object.entries(p.workers ?? {})) {
    out.push({ user: `worker-${id}`, password, role: `gaffer-worker-${id}`, grants: etcdRoles.worker(id) });
  }
  if (p.health) out.push({ user: 'health', password: p.health });
  return out;
}

function toRange(g: Grant): Range {
  return 'prefix' in g ? Range.prefix(g.prefix) : new Range(g.key);
}

function sameRange(a: Range, b: Range): boolean {
  return a.start.equals(b.start) && a.end.equals(b.end);
}

async function exists<T>(p: Promise<T>, already: new (...args: never[]) => Error): Promise<boolean> {
  try {
    await p;
    return false;
  } catch (err) {
    if (err instanceof already) return true;
    throw err;
  }
}

/** authEnabled: with auth on, an anonymous read is refused for want of a user name. */
async function authEnabled(anon: Etcd3): Promise<boolean> {
  try {
    await anon.kv.range({ key: Buffer.from(GAFFER_PREFIX), limit: 1, keys_only: true });
    return false;
  } catch (err) {
    if (/user name is empty|invalid auth token|permission denied/.test((err as Error).message)) return true;
    throw err;
  }
}

export interface SetupOptions {
  tls?: EtcdTls;
  /** The `root` user's password: setup logs in with it once auth is on. */
  rootPassword: string;
  accounts: EtcdAccount[];
}

/**
 * setupEtcdAuth creates (or brings up to date) the root user, every
 * account's role with exactly its grants, and every user with its password
 * and role, then turns auth on. Run again, it changes only what differs.
 */
export async function setupEtcdAuth(endpoints: string[], opts: SetupOptions): Promise<void> {
  const tls = opts.tls;
  const base = {
    hosts: endpoints,
    ...(tls ? { credentials: { rootCertificate: tls.ca as Buffer, ...(tls.key ? { privateKey: tls.key } : {}), ...(tls.cert ? { certChain: tls.cert } : {}) } } : {}),
  };
  const anon = new Etcd3(base);
  let on: boolean;
  try {
    on = await authEnabled(anon);
  } finally {
    anon.close();
  }
  const admin = new Etcd3(on ? { ...base, auth: { username: 'root', password: opts.rootPassword } } : base);
  try {
    if (await exists(admin.user('root').create(opts.rootPassword), EtcdUserExistsError)) {
      await admin.user('root').setPassword(opts.rootPassword);
    }
    await grantRole(admin, 'root', 'root');
    for (const a of opts.accounts) {
      if (a.role) {
        await exists(admin.role(a.role).create(), EtcdRoleExistsError);
        const want = (a.grants ?? []).map((g) => ({ permission: g.permission, range: toRange(g) }));
        for (const have of await admin.role(a.role).permissions()) {
          if (!want.some((w) => w.permission === have.permission && sameRange(w.range, have.range))) await admin.role(a.role).revoke(have);
        }
        for (const w of want) await admin.role(a.role).grant(w);
      }
      if (await exists(admin.user(a.user).create(a.password), EtcdUserExistsError)) await admin.user(a.user).setPassword(a.password);
      if (a.role) await grantRole(admin, a.user, a.role);
    }
    if (!on) await admin.auth.authEnable({});
  } finally {
    admin.close();
  }
}

async function grantRole(admin: Etcd3, user: string, role: string): Promise<void> {
  const roles = await admin.user(user).roles();
  if (!roles.some((r) => r.name === role)) await admin.user(user).addRole(role);
}

// --- run as a one-shot service (docker-compose.yml: etcd-init) ---

/** envName is how an id appears in an environment variable: GAFFER_ETCD_WORKER_<ID>_PASSWORD. */
export function envName(id: string): string {
  return id.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/**
 * accountsFromEnv reads what main sets up:
 *   GAFFER_ETCD_ROOT_PASSWORD, GAFFER_ETCD_MASTER_PASSWORD        required
 *   GAFFER_ETCD_WORKER_PASSWORD                                   the shared `worker` user
 *   GAFFER_ETCD_WORKER_IDS=w1,w2 and GAFFER_ETCD_WORKER_W1_PASSWORD … one user per fixed worker id
 *   GAFFER_ETCD_HEALTH_PASSWORD                                   `health`: no role (health checks)
 */
export function accountsFromEnv(env: NodeJS.ProcessEnv): { rootPassword: string; accounts: EtcdAccount[] } {
  const need = (name: string): string => {
    const v = env[name];
    if (!v) throw new Error(`${name} is not set`);
    return v;
  };
  const workers: Record<string, string> = {};
  for (const id of (env.GAFFER_ETCD_WORKER_IDS ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    workers[id] = need(`GAFFER_ETCD_WORKER_${envName(id)}_PASSWORD`);
  }
  return {
    rootPassword: need('GAFFER_ETCD_ROOT_PASSWORD'),
    accounts: gafferAccounts({
      master: need('GAFFER_ETCD_MASTER_PASSWORD'),
      ...(env.GAFFER_ETCD_WORKER_PASSWORD ? { worker: env.GAFFER_ETCD_WORKER_PASSWORD } : {}),
      workers,
      ...(env.GAFFER_ETCD_HEALTH_PASSWORD ? { health: env.GAFFER_ETCD_HEALTH_PASSWORD } : {}),
    }),
  };
}

async function main(): Promise<void> {
  const env = process.env;
  const endpoints = parseEndpoints(env.ETCD_ENDPOINTS);
  const tls = env.ETCD_CA || env.ETCD_CERT ? readEtcdTls({ caFile: env.ETCD_CA, certFile: env.ETCD_CERT, keyFile: env.ETCD_KEY }) : undefined;
  const { rootPassword, accounts } = accountsFromEnv(env);
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await setupEtcdAuth(endpoints, { ...(tls ? { tls } : {}), rootPassword, accounts });
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      process.stderr.write(`etcd-init: ${(err as Error).message}; retrying\n`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  const who = accounts.map((a) => (a.role ? `${a.user} (${a.role})` : a.user)).join(', ');
  process.stdout.write(`etcd-init: auth on at ${endpoints.join(',')}; users root, ${who}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    process.stderr.write(`etcd-init: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
