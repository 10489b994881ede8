// The dev cluster with security on (`gaffer dev --secure`, `cluster({ secure:
// true })`): certificates made by scripts/make-certs.sh in the cluster's own
// directory, NATS with TLS and the repository's nats.conf (its users and
// permissions; random passwords instead of the published dev defaults), and
// etcd with TLS and RBAC (etcd-auth.ts). SecureSetup says what each process
// gets: its NATS user, its etcd user, and the CA.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gafferAccounts, type EtcdAccount } from './etcd-auth.js';
import type { ServerTls } from './servers.js';
import type { TlsFiles } from '#platform/config.js';

export const MAKE_CERTS = fileURLToPath(new URL('../../../scripts/make-certs.sh', import.meta.url));
export const NATS_CONF = fileURLToPath(new URL('../../../nats.conf', import.meta.url));

/** Certs are the PEM files make-certs.sh writes. */
export interface Certs {
  dir: string;
  ca: string;
  nats: ServerTls;
  etcd: ServerTls;
  client: { certFile: string; keyFile: string };
}

/** makeCerts runs scripts/make-certs.sh into dir (openssl; a fraction of a second). */
export function makeCerts(dir: string): Certs {
  execFileSync('bash', [MAKE_CERTS, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  const ca = join(dir, 'ca.pem');
  const server = (name: string): ServerTls => ({ certFile: join(dir, `${name}.pem`), keyFile: join(dir, `${name}-key.pem`), caFile: ca });
  return { dir, ca, nats: server('nats-server'), etcd: server('etcd-server'), client: { certFile: join(dir, 'client.pem'), keyFile: join(dir, 'client-key.pem') } };
}

/** natsConfUsers reads nats.conf's users: user name -> the variable that holds its password. */
export function natsConfUsers(conf: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of conf.matchAll(/user:\s*"([^"]+)"\s*\n\s*password:\s*\$(\w+)/g)) out.set(m[1]!, m[2]!);
  return out;
}

/** withoutPort drops nats.conf's `port:` line: startNats listens on a port of its own. */
export function withoutPort(conf: string): string {
  return conf
    .split('\n')
    .filter((l) => !/^port:\s*\d+\s*$/.test(l))
    .join('\n');
}

function secret(): string {
  return randomBytes(18).toString('base64url');
}

export interface ProcessCredentials {
  natsUser: string;
  natsPass: string;
  etcdUser: string;
  etcdPass: string;
}

export class SecureSetup {
  private constructor(
    readonly certs: Certs,
    readonly natsConf: string,
    /** nats.conf password variable -> its password for this cluster. */
    private readonly natsPasswords: Map<string, string>,
    private readonly natsUsers: Map<string, string>,
    readonly etcdRootPassword: string,
    readonly etcdAccounts: EtcdAccount[],
  ) {}

  /**
   * create makes the certificates under `dir`/certs and a random password for
   * every nats.conf user and every etcd user: `master`, the shared `worker`
   * and `worker-<id>` for each of `workerIds`.
   */
  static create(dir: string, workerIds: string[]): SecureSetup {
    const certs = makeCerts(join(dir, 'certs'));
    const conf = readFileSync(NATS_CONF, 'utf8');
    const users = natsConfUsers(conf);
    const passwords = new Map([...new Set(users.values())].map((v) => [v, secret()]));
    const accounts = gafferAccounts({ master: secret(), worker: secret(), workers: Object.fromEntries(workerIds.map((id) => [id, secret()])) });
    return new SecureSetup(certs, conf, passwords, users, secret(), accounts);
  }

  /** natsExtraConfig is nats.conf for startNats; writeNatsPasswords puts its password overrides next to it. */
  natsExtraConfig(): string {
    return withoutPort(this.natsConf);
  }

  /** writeNatsPasswords writes `deploy/nats-passwords.conf` under the server's directory, where nats.conf includes it. */
  writeNatsPasswords(natsDir: string): void {
    mkdirSync(join(natsDir, 'deploy'), { recursive: true });
    const lines = [...this.natsPasswords].map(([v, p]) => `${v}: ${JSON.stringify(p)}`);
    writeFileSync(join(natsDir, 'deploy', 'nats-passwords.conf'), `${lines.join('\n')}\n`, { mode: 0o600 });
  }

  natsPassword(user: string): string {
    const v = this.natsUsers.get(user);
    const p = v ? this.natsPasswords.get(v) : undefined;
    if (!p) throw new Error(`nats.conf has no user ${user}`);
    return p;
  }

  private etcdPassword(user: string): string | undefined {
    return this.etcdAccounts.find((a) => a.user === user)?.password;
  }

  /**
   * credentials: a master logs in as `master` to both; worker <id> as
   * `worker-<id>` where nats.conf (NATS) or the cluster's start (etcd) made
   * one, and as the shared `worker` otherwise.
   */
  credentials(role: 'master' | 'worker', id: string): ProcessCredentials {
    const own = `worker-${id}`;
    const natsUser = role === 'master' ? 'master' : this.natsUsers.has(own) ? own : 'worker';
    const etcdUser = role === 'master' ? 'master' : this.etcdPassword(own) ? own : 'worker';
    return { natsUser, natsPass: this.natsPassword(natsUser), etcdUser, etcdPass: this.etcdPassword(etcdUser)! };
  }

  /** env is what a gaffer process gets: credentials from the environment, as docs/deploy.md recommends. */
  env(role: 'master' | 'worker', id: string): NodeJS.ProcessEnv {
    const c = this.credentials(role, id);
    return {
      NATS_USER: c.natsUser,
      NATS_PASSWORD: c.natsPass,
      NATS_CA: this.certs.ca,
      ETCD_CA: this.certs.ca,
      ETCD_USER: c.etcdUser,
      ETCD_PASSWORD: c.etcdPass,
    };
  }

  /** client is how a client logs in: the `client` user, trusting the cluster's CA. */
  client(): { user: string; pass: string; tls: TlsFiles } {
    return { user: 'client', pass: this.natsPassword('client'), tls: { caFile: this.certs.ca } };
  }

  /** clientEnv is a file of NATS_* variables for a shell (`set -a; . client.env`), mode 0600. */
  writeClientEnv(path: string, natsUrl: string): void {
    const c = this.client();
    const vars = { NATS_URL: natsUrl, NATS_USER: c.user, NATS_PASSWORD: c.pass, NATS_CA: this.certs.ca };
    writeFileSync(path, Object.entries(vars).map(([k, v]) => `${k}=${v}`).join('\n') + '\n', { mode: 0o600 });
  }
}
