// docker-compose.yml, checked without a Docker engine: Debian's docker-compose
// validates and normalizes it (`config` works offline), and the normalized
// services are checked against the gaffer CLI (`--help` of the built CLI) and
// against nats.conf. Then the three NATS nodes are run for real, as compose
// would run them (same mounts, command and environment; loopback ports), and
// a client request crosses the routes to a master.
// Skipped, with the reason, when docker-compose is not installed.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, ErrorCode as NatsErrorCode, type NatsConnection } from 'nats';
import { Child } from '#devcluster/child.js';
import { CLI_PATH } from '#devcluster/cluster.js';
import { json } from '#protocol/codec.js';
import { parsePositiveInt, parseReplicas, parseTtl } from '#platform/config.js';
import { ID_RE } from '#protocol/messages.js';
import { freePort, waitFor, which } from '#devcluster/servers.js';
import { ensureResultsStream, readResults, ResultsPublisher, type ResultRecord } from '#platform/nats/results.js';
import { inboxPrefixFor } from '#platform/nats/bus.js';
import { makeCerts, type Certs } from '#devcluster/secure.js';
import { Etcd3 } from 'etcd3';
import { EtcdStore } from '#platform/etcd/store.js';
import { readEtcdTls } from '#platform/etcd/tls.js';
import { keys } from '#protocol/keys.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const COMPOSE_FILE = join(ROOT, 'docker-compose.yml');
const NATS_CONF = readFileSync(join(ROOT, 'nats.conf'), 'utf8');

function findBinary(bin: string): string | undefined {
  try {
    return which(bin);
  } catch {
    return undefined;
  }
}
const COMPOSE = findBinary('docker-compose');
const SKIP = COMPOSE ? false : 'docker-compose is not installed (Debian: apt-get install -y docker-compose); nothing to validate the file with';

interface Service {
  image?: string;
  restart?: string;
  build?: { context: string };
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  ports?: string[];
  volumes?: string[];
  container_name?: string;
  profiles?: string[];
}
interface Config {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** compose runs docker-compose on our file with only the given GAFFER_* variables set. */
function compose(args: string[], vars: Record<string, string> = {}): string {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GAFFER_') && !k.startsWith('COMPOSE_')) env[k] = v;
  const r = spawnSync(COMPOSE!, ['--project-directory', ROOT, '-f', COMPOSE_FILE, ...args], {
    cwd: ROOT,
    env: { ...env, ...vars },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `docker-compose ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

/** composePython is the interpreter docker-compose runs on (its #! line), which has PyYAML: compose needs it. */
function composePython(): string {
  const shebang = /^#!\s*(\S+)/.exec(readFileSync(COMPOSE!, 'utf8').split('\n', 1)[0]!);
  return shebang?.[1] ?? 'python3';
}

/** normalized is `docker-compose config` as an object, converted by the YAML library compose itself uses. */
function normalized(vars: Record<string, string> = {}): Config {
  const yaml = compose(['--profile', 'cli', 'config'], vars);
  const r = spawnSync(composePython(), ['-c', 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], {
    input: yaml,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `converting docker-compose config to JSON failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as Config;
}

/** natsUsers maps each nats.conf user to the variable holding its password and that variable's dev default. */
function natsUsers(): Map<string, { variable: string; password: string }> {
  const defaults = new Map<string, string>();
  for (const m of NATS_CONF.matchAll(/^(GAFFER_NATS_\w+_PASSWORD):\s*"([^"]*)"\s*$/gm)) defaults.set(m[1]!, m[2]!);
  const users = new Map<string, { variable: string; password: string }>();
  for (const m of NATS_CONF.matchAll(/user:\s*"([^"]+)"\s*\n\s*password:\s*\$(\w+)/g)) {
    users.set(m[1]!, { variable: m[2]!, password: defaults.get(m[2]!) ?? '' });
  }
  return users;
}

/** cliOptions lists the --flags and subcommands the built CLI documents for `args --help`. */
function cliHelp(args: string[]): { options: Set<string>; commands: Set<string> } {
  const r = spawnSync(process.execPath, [CLI_PATH, ...args, '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `gaffer ${args.join(' ')} --help failed:\n${r.stderr}`);
  const options = new Set<string>();
  const commands = new Set<string>();
  let section = '';
  for (const line of r.stdout.split('\n')) {
    if (/^\S.*:$/.test(line)) section = line;
    if (section === 'Options:') for (const m of line.matchAll(/^\s+(?:-\w, )?(--[a-z][a-z-]*)/g)) options.add(m[1]!);
    if (section === 'Commands:') {
      const m = /^\s+([a-z][a-z-]*)/.exec(line);
      if (m) commands.add(m[1]!);
    }
  }
  return { options, commands };
}

/** flag reads `--name value` or `--name=value` from a command. */
function flag(command: string[], name: string): string | undefined {
  for (let i = 0; i < command.length; i++) {
    if (command[i] === name) return command[i + 1];
    if (command[i]!.startsWith(`${name}=`)) return command[i]!.slice(name.length + 1);
  }
  return undefined;
}

const NATS_NODES = ['nats-1', 'nats-2', 'nats-3'];
const ETCD_MEMBERS = ['etcd-1', 'etcd-2', 'etcd-3'];
const MASTERS = ['master-1', 'master-2', 'master-3'];
const GAFFER = [...MASTERS, 'worker', 'cli'];
/** Where compose mounts the CA for gaffer processes, and where the certificates come from. */
const GAFFER_CA = '/etc/gaffer/certs/ca.pem';
const CERTS = join(ROOT, 'deploy', 'certs');

describe('docker-compose.yml', { skip: SKIP }, () => {
  let cfg: Config;
  before(() => {
    cfg = normalized();
  });

  it('is valid for docker-compose', () => {
    compose(['config', '-q']);
  });

  it('has 3 nats nodes, 3 etcd members, a one-shot etcd-init, 3 masters, a worker service and an on-demand cli', () => {
    const services = compose(['--profile', 'cli', 'config', '--services']).trim().split('\n').sort();
    assert.deepEqual(services, [...NATS_NODES, ...ETCD_MEMBERS, 'etcd-init', ...MASTERS, 'worker', 'cli'].sort());
    assert.deepEqual(cfg.services.cli!.profiles, ['cli'], 'cli runs only on demand');
  });

  it('clusters the nats nodes through routes, each on the shared accounts file', () => {
    const names = new Set<string>();
    for (const name of NATS_NODES) {
      const s = cfg.services[name]!;
      assert.deepEqual(s.entrypoint, ['nats-server']);
      assert.equal(flag(s.command!, '-c'), '/etc/nats/nats-cluster.conf');
      names.add(flag(s.command!, '--server_name') ?? '');
      assert.equal(flag(s.command!, '--cluster'), undefined, '--cluster would drop the route authorization');
      const mounts = new Map(s.volumes!.map((v) => [v.split(':')[1]!, v.split(':')[0]!]));
      assert.equal(mounts.get('/etc/nats/nats-cluster.conf'), join(ROOT, 'deploy', 'nats-cluster.conf'));
      assert.equal(mounts.get('/etc/nats/gaffer.conf'), join(ROOT, 'nats.conf'));
      assert.equal(mounts.get('/etc/nats/deploy/nats-passwords.conf'), join(ROOT, 'deploy', 'nats-passwords.env.conf'));
      for (const file of ['ca.pem', 'nats-server.pem', 'nats-server-key.pem']) {
        assert.equal(mounts.get(`/etc/nats/certs/${file}`), join(CERTS, file), `${name} mounts ${file} of scripts/make-certs.sh`);
      }
      assert.ok(![...mounts.values()].some((src) => src.endsWith('ca-key.pem') || src === CERTS), `${name} gets no CA key`);
      // JetStream: each node keeps its store (the task results) in its own named volume.
      assert.equal(mounts.get('/data'), name, `${name} mounts its own volume at /data`);
      assert.ok(cfg.volumes && name in cfg.volumes, `volume ${name} is declared`);
      const routes = NATS_NODES.map((_, i) => new URL(s.environment![`GAFFER_NATS_ROUTE_${i + 1}`]!));
      assert.deepEqual(routes.map((u) => `${u.protocol}//${u.hostname}:${u.port}`), NATS_NODES.map((n) => `nats-route://${n}:6222`));
      for (const u of routes) assert.equal(decodeURIComponent(u.password), s.environment!.GAFFER_NATS_ROUTE_PASSWORD);
      assert.ok(s.healthcheck?.test.join(' ').includes('8222/healthz'), `${name} has a healthcheck on /healthz`);
    }
    assert.deepEqual([...names].sort(), NATS_NODES, 'each node has its own server name');
    const clusterConf = readFileSync(join(ROOT, 'deploy', 'nats-cluster.conf'), 'utf8');
    assert.match(clusterConf, /^\s*store_dir: "\/data\/jetstream"$/m, 'the JetStream store is on the volume');
    // TLS for clients (top level) and for routes (in cluster {}, verifying the peer's certificate).
    assert.match(clusterConf, /^tls \{\n  cert_file: "\/etc\/nats\/certs\/nats-server\.pem"\n  key_file: "\/etc\/nats\/certs\/nats-server-key\.pem"\n  ca_file: "\/etc\/nats\/certs\/ca\.pem"/m);
    assert.match(clusterConf, /^cluster \{[\s\S]*^  tls \{\n    cert_file: "\/etc\/nats\/certs\/nats-server\.pem"[\s\S]*?verify: true[\s\S]*^\}/m);
  });

  it('forms one etcd cluster from three members with matching peer URLs', () => {
    const initial = new Set<string>();
    const tokens = new Set<string>();
    for (const name of ETCD_MEMBERS) {
      const c = cfg.services[name]!.command!;
      assert.equal(flag(c, '--name'), name);
      assert.equal(flag(c, '--initial-advertise-peer-urls'), `https://${name}:2380`);
      assert.equal(flag(c, '--advertise-client-urls'), `https://${name}:2379`);
      // TLS for clients and for peers, who verify each other's certificates.
      assert.equal(flag(c, '--listen-client-urls'), 'https://0.0.0.0:2379');
      assert.equal(flag(c, '--listen-peer-urls'), 'https://0.0.0.0:2380');
      assert.equal(flag(c, '--cert-file'), '/etc/etcd/certs/etcd-server.pem');
      assert.equal(flag(c, '--key-file'), '/etc/etcd/certs/etcd-server-key.pem');
      assert.equal(flag(c, '--peer-trusted-ca-file'), '/etc/etcd/certs/ca.pem');
      assert.ok(c.includes('--peer-client-cert-auth'), `${name} verifies its peers`);
      const certMounts = cfg.services[name]!.volumes!.filter((v) => v.startsWith(`${CERTS}/`));
      assert.deepEqual(certMounts, ['ca.pem', 'etcd-server.pem', 'etcd-server-key.pem'].map((f) => `${join(CERTS, f)}:/etc/etcd/certs/${f}:ro`), `${name} mounts the CA and its certificate and key only`);
      assert.equal(flag(c, '--initial-cluster-state'), 'new');
      initial.add(flag(c, '--initial-cluster') ?? '');
      tokens.add(flag(c, '--initial-cluster-token') ?? '');
      assert.ok(cfg.services[name]!.healthcheck?.test.includes('endpoint'), `${name} has a health check`);
      assert.ok(cfg.services[name]!.volumes?.some((v) => v.startsWith(`${name}:`)), `${name} keeps its data in a volume`);
    }
    assert.deepEqual([...initial], [ETCD_MEMBERS.map((n) => `${n}=https://${n}:2380`).join(',')]);
    assert.equal(tokens.size, 1);
  });

  it('runs masters and workers with commands the CLI accepts', () => {
    const top = cliHelp([]);
    const ids = new Set<string>();
    for (const name of [...MASTERS, 'worker']) {
      const s = cfg.services[name]!;
      const [role, ...rest] = s.command!;
      assert.ok(role === 'master' || role === 'worker', `${name} runs a role`);
      assert.ok(top.commands.has(role), `gaffer has a ${role} command`);
      const { options } = cliHelp([role]);
      for (const arg of rest) if (arg.startsWith('--')) assert.ok(options.has(arg.split('=')[0]!), `gaffer ${role} accepts ${arg}`);
      assert.equal(flag(s.command!, '--nats-pass'), undefined, `${name} keeps its password out of the command line`);
      if (role === 'master') {
        const id = flag(s.command!, '--id')!;
        assert.match(id, ID_RE);
        ids.add(id);
      }
    }
    assert.equal(ids.size, MASTERS.length, 'master ids are unique');
    assert.equal(parsePositiveInt(flag(cfg.services.worker!.command!, '--capacity'), '--capacity', 0) > 0, true);
    const cli = cfg.services.cli!.command!;
    assert.ok(top.commands.has(cli[0]!), `gaffer has a ${cli[0]} command`);
  });

  it('lets the worker service scale: generated ids, no fixed name or host port', () => {
    const w = cfg.services.worker!;
    assert.equal(flag(w.command!, '--id'), undefined);
    assert.equal(w.environment?.GAFFER_ID, undefined);
    assert.equal(w.container_name, undefined);
    assert.equal(w.ports, undefined);
    assert.equal(w.environment?.NATS_USER, 'worker', 'generated ids need the shared worker user');
  });

  it('starts masters and workers after every nats node and etcd member is healthy, with the cluster in their environment', () => {
    for (const name of [...MASTERS, 'worker']) {
      const s = cfg.services[name]!;
      assert.ok(s.build, `${name} is built from the Dockerfile`);
      for (const dep of [...NATS_NODES, ...ETCD_MEMBERS]) assert.equal(s.depends_on?.[dep]?.condition, 'service_healthy', `${name} waits for ${dep}`);
      assert.equal(s.depends_on?.['etcd-init']?.condition, 'service_completed_successfully', `${name} waits for etcd auth`);
      const env = s.environment!;
      assert.deepEqual(env.NATS_URL!.split(','), NATS_NODES.map((n) => `nats://${n}:4222`));
      assert.deepEqual(env.ETCD_ENDPOINTS!.split(','), ETCD_MEMBERS.map((n) => `https://${n}:2379`));
      assert.equal(parseTtl(env.GAFFER_TTL), 3);
      assert.equal(parseReplicas(env.GAFFER_RESULTS_REPLICAS), NATS_NODES.length, 'results kept on every NATS node');
    }
    assert.equal(cfg.services.cli!.environment!.NATS_URL, cfg.services['master-1']!.environment!.NATS_URL);
  });

  it('gives every gaffer process the CA, and only the CA, to verify the servers', () => {
    for (const name of [...GAFFER, 'etcd-init']) {
      const s = cfg.services[name]!;
      assert.deepEqual(s.volumes, [`${join(CERTS, 'ca.pem')}:${GAFFER_CA}:ro`], `${name} mounts ca.pem alone`);
      if (name !== 'cli') assert.equal(s.environment!.ETCD_CA, GAFFER_CA, `${name} trusts the CA for etcd`);
      if (name !== 'etcd-init') assert.equal(s.environment!.NATS_CA, GAFFER_CA, `${name} trusts the CA for NATS`);
    }
    assert.equal(cfg.services.cli!.environment!.ETCD_USER, undefined, 'the cli does not talk to etcd');
  });

  it('turns etcd auth on once, from the gaffer image, before any gaffer process starts', () => {
    const init = cfg.services['etcd-init']!;
    assert.equal(init.image, 'gaffer:latest');
    assert.deepEqual(init.entrypoint, ['node', 'dist/src/devcluster/etcd-auth.js']);
    assert.ok(existsSync(join(ROOT, 'src', 'devcluster', 'etcd-auth.ts')), 'the program is in the image (src/ is built into dist/)');
    assert.equal(init.restart, 'no');
    for (const m of ETCD_MEMBERS) assert.equal(init.depends_on?.[m]?.condition, 'service_healthy');
    assert.deepEqual(init.environment!.ETCD_ENDPOINTS!.split(','), ETCD_MEMBERS.map((n) => `https://${n}:2379`));
    for (const v of ['ROOT', 'MASTER', 'WORKER', 'HEALTH']) assert.ok(init.environment![`GAFFER_ETCD_${v}_PASSWORD`], `GAFFER_ETCD_${v}_PASSWORD`);
    for (const id of init.environment!.GAFFER_ETCD_WORKER_IDS!.split(',')) {
      assert.ok(init.environment![`GAFFER_ETCD_WORKER_${id.toUpperCase()}_PASSWORD`], `a password for worker-${id}`);
    }
    // The healthcheck logs in as `health` with the password etcd-init gives it.
    for (const m of ETCD_MEMBERS) {
      const env = cfg.services[m]!.environment!;
      assert.deepEqual(cfg.services[m]!.healthcheck!.test, ['CMD', '/usr/local/bin/etcdctl', 'endpoint', 'health']);
      assert.equal(env.ETCDCTL_ENDPOINTS, 'https://127.0.0.1:2379');
      assert.equal(env.ETCDCTL_CACERT, '/etc/etcd/certs/ca.pem');
      assert.equal(env.ETCDCTL_USER, `health:${init.environment!.GAFFER_ETCD_HEALTH_PASSWORD}`);
    }
  });

  it('gives each process the nats.conf user for its role, with the password the servers expect', () => {
    const users = natsUsers();
    const expected: Record<string, string> = { 'master-1': 'master', 'master-2': 'master', 'master-3': 'master', worker: 'worker', cli: 'client' };
    const check = (c: Config, password: (user: string) => string) => {
      const init = c.services['etcd-init']!.environment!;
      for (const [name, user] of Object.entries(expected)) {
        const env = c.services[name]!.environment!;
        assert.equal(env.NATS_USER, user);
        assert.equal(env.NATS_PASSWORD, password(user), `${name}'s password`);
        if (name === 'cli') continue;
        // etcd: the same role name, with the password etcd-init gave that user.
        assert.equal(env.ETCD_USER, user);
        assert.equal(env.ETCD_PASSWORD, init[`GAFFER_ETCD_${user.toUpperCase()}_PASSWORD`], `${name}'s etcd password`);
      }
      for (const node of NATS_NODES) {
        for (const [user, u] of users) assert.equal(c.services[node]!.environment![u.variable], password(user), `${node} has ${u.variable}`);
      }
    };
    // Defaults: the dev defaults written in nats.conf.
    check(cfg, (user) => users.get(user)!.password);
    // Overrides: one variable per user changes the server side and the process side together.
    const vars = Object.fromEntries([...users.values()].map((u) => [u.variable, `override-${u.variable.toLowerCase()}`]));
    const etcdVars = { GAFFER_ETCD_MASTER_PASSWORD: 'override-etcd-master', GAFFER_ETCD_WORKER_PASSWORD: 'override-etcd-worker' };
    const overridden = normalized({ ...vars, ...etcdVars });
    check(overridden, (user) => `override-${users.get(user)!.variable.toLowerCase()}`);
    assert.equal(overridden.services['master-1']!.environment!.ETCD_PASSWORD, 'override-etcd-master');
    assert.equal(overridden.services.worker!.environment!.ETCD_PASSWORD, 'override-etcd-worker');
  });

  it('builds one image whose entrypoint is the CLI', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /^FROM node:20-slim/m);
    assert.match(dockerfile, /^RUN npm ci\b/m);
    assert.match(dockerfile, /^ENTRYPOINT \["node", "dist\/bin\/gaffer\.js"\]$/m);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    assert.equal(pkg.bin.gaffer, 'dist/bin/gaffer.js', 'the entrypoint is the package binary');
    for (const name of GAFFER) assert.equal(cfg.services[name]!.image, 'gaffer:latest');
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const needed of ['bin', 'src', 'actors', 'package.json', 'package-lock.json', 'tsconfig.json']) {
      assert.ok(!ignored.includes(needed), `${needed} is in the build context`);
      assert.match(dockerfile, new RegExp(`^COPY .*\\b${needed.replace('.', '\\.')}\\b`, 'm'), `the Dockerfile copies ${needed}`);
    }
  });
});

describe('the compose nats cluster, run for real', { skip: SKIP || (findBinary('nats-server') ? false : 'nats-server is not installed') }, () => {
  let dir: string;
  /** The certificates scripts/make-certs.sh makes, standing in for deploy/certs. */
  let certs: Certs;
  const nodes: Array<{ name: string; child: Child; client: number; cluster: number; monitor: number }> = [];
  const conns: NatsConnection[] = [];

  after(async () => {
    await Promise.all(conns.map((nc) => nc.close().catch(() => undefined)));
    await Promise.all(nodes.map((n) => n.child.stop()));
    if (dir && process.env.GAFFER_KEEP_LOGS !== '1') rmSync(dir, { recursive: true, force: true });
  });

  it('routes a client request from one node to a master on another, with the compose credentials', async () => {
    const cfg = normalized();
    dir = mkdtempSync(join(tmpdir(), 'gaffer-compose-nats-'));
    certs = makeCerts(join(dir, 'certs'));
    const ports = await Promise.all(NATS_NODES.flatMap(() => [freePort(), freePort(), freePort()]));
    for (const [i, name] of NATS_NODES.entries()) {
      nodes.push({ name, child: undefined as unknown as Child, client: ports[3 * i]!, cluster: ports[3 * i + 1]!, monitor: ports[3 * i + 2]! });
    }
    // The files exactly as compose mounts them, under <dir>/<node>/<container path>.
    for (const node of nodes) {
      const s = cfg.services[node.name]!;
      for (const v of s.volumes!) {
        const [src, target] = v.split(':') as [string, string];
        if (src.startsWith(`${CERTS}/`)) {
          // deploy/certs is made by scripts/make-certs.sh, not kept in the repository.
          mkdirSync(dirname(join(dir, node.name, target)), { recursive: true });
          copyFileSync(join(certs.dir, src.slice(CERTS.length + 1)), join(dir, node.name, target));
          continue;
        }
        if (!src.startsWith('/')) {
          // A named volume (the JetStream store): a fresh directory stands in for it.
          mkdirSync(join(dir, node.name, target), { recursive: true });
          continue;
        }
        assert.ok(existsSync(src), `${src} exists`);
        mkdirSync(dirname(join(dir, node.name, target)), { recursive: true });
        copyFileSync(src, join(dir, node.name, target));
      }
      // The cluster port moves to loopback in the file itself: the --cluster flag would also
      // replace the file's route authorization (with none), and that must stay under test.
      const clusterConf = join(dir, node.name, '/etc/nats/nats-cluster.conf');
      const text = readFileSync(clusterConf, 'utf8');
      const moved = text.replace(/^(\s*)listen: 0\.0\.0\.0:6222$/m, `$1listen: 127.0.0.1:${node.cluster}`);
      assert.notEqual(moved, text, 'nats-cluster.conf listens for routes on 0.0.0.0:6222');
      // Likewise the JetStream store: the node's stand-in volume instead of /data.
      const store = moved.replace(/^(\s*)store_dir: "\/data\/jetstream"$/m, `$1store_dir: ${JSON.stringify(join(dir, node.name, 'data', 'jetstream'))}`);
      assert.notEqual(store, moved, 'nats-cluster.conf stores JetStream under /data');
      // And the certificates: the node's copy of the mounted directory.
      const tls = store.replaceAll('"/etc/nats/certs/', `"${join(dir, node.name, 'etc', 'nats', 'certs')}/`);
      assert.notEqual(tls, store, 'nats-cluster.conf takes its certificates from /etc/nats/certs');
      writeFileSync(clusterConf, tls);
      // Compose's command and environment; only addresses change: loopback ports instead of hostnames.
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, ...s.environment };
      for (const [j, other] of nodes.entries()) {
        const u = new URL(env[`GAFFER_NATS_ROUTE_${j + 1}`]!);
        assert.equal(u.hostname, other.name);
        u.hostname = '127.0.0.1';
        u.port = String(other.cluster);
        env[`GAFFER_NATS_ROUTE_${j + 1}`] = u.toString();
      }
      const command = s.command!.map((a, k, all) => (all[k - 1] === '-c' ? join(dir, node.name, a) : a));
      node.child = new Child({
        name: node.name,
        cmd: which(s.entrypoint![0]!),
        args: [...command, '-a', '127.0.0.1', '-p', String(node.client), '-m', String(node.monitor)],
        env,
        logFile: join(dir, `${node.name}.log`),
      }).start();
    }
    for (const node of nodes) {
      await waitFor(
        `${node.name} to route to both others`,
        async () => {
          if (!node.child.running) throw new Error(`${node.name} exited: ${readFileSync(join(dir, `${node.name}.log`), 'utf8')}`);
          const r = (await (await fetch(`http://127.0.0.1:${node.monitor}/routez`, { signal: AbortSignal.timeout(1000) })).json()) as { num_routes: number };
          return r.num_routes === 2;
        },
        20000,
      );
    }

    const login = async (service: string, node: number): Promise<NatsConnection> => {
      const env = cfg.services[service]!.environment!;
      // TLS, trusting the CA as the gaffer containers do (NATS_CA); by name, as they do.
      const nc = await connect({
        servers: `localhost:${nodes[node]!.client}`,
        tls: { caFile: certs.ca },
        user: env.NATS_USER!,
        pass: env.NATS_PASSWORD!,
        reconnect: false,
        inboxPrefix: inboxPrefixFor(env.NATS_USER)!,
      });
      conns.push(nc);
      return nc;
    };
    const master = await login('master-1', 0);
    await login('worker', 1);
    const client = await login('cli', 2);
    master.subscribe('cluster.status', { queue: 'masters', callback: (_e, m) => void m.respond(json.encode({ ok: true, via: 'nats-1' })) });
    await master.flush();
    const reply = await waitFor(
      'the master on nats-1 to answer a client on nats-3',
      async () => {
        try {
          return await client.request('cluster.status', json.encode({}), { timeout: 1000 });
        } catch (err) {
          // Interest crosses the routes shortly after the subscription: until then, no responders.
          if ((err as { code?: string }).code === NatsErrorCode.NoResponders) return undefined;
          throw err;
        }
      },
      10000,
    );
    assert.deepEqual(json.decode(reply.data), { ok: true, via: 'nats-1' });
    const violations = nodes.flatMap((n) => readFileSync(join(dir, `${n.name}.log`), 'utf8').split('\n')).filter((l) => /violation|authori[sz]ation|authentication/i.test(l));
    assert.deepEqual(violations, [], 'no refused logins or permissions (routes included)');
  });

  it('keeps task results in clustered JetStream: 3 replicas, stored through one node, read through another', async () => {
    const cfg = normalized();
    const login = async (service: string, node: number): Promise<NatsConnection> => {
      const env = cfg.services[service]!.environment!;
      // TLS, trusting the CA as the gaffer containers do (NATS_CA); by name, as they do.
      const nc = await connect({
        servers: `localhost:${nodes[node]!.client}`,
        tls: { caFile: certs.ca },
        user: env.NATS_USER!,
        pass: env.NATS_PASSWORD!,
        reconnect: false,
        inboxPrefix: inboxPrefixFor(env.NATS_USER)!,
      });
      conns.push(nc);
      return nc;
    };
    const [master, worker, client] = [await login('master-2', 0), await login('worker', 1), await login('cli', 2)];
    // Until the nodes elect a JetStream meta leader, the stream cannot be created.
    const info = await waitFor('clustered JetStream to create the results stream', () => ensureResultsStream(master, { replicas: 3 }), 30000);
    assert.equal(info.config.num_replicas, 3);
    const pub = new ResultsPublisher(worker);
    const item = { page: 'https://example.com/', n: 1 };
    // Emitting again is what a resumed task does: safe, the item is stored once.
    const first = await waitFor('the stream to take results through nats-2', () => pub.emit('compose-books', 'rid-c', 'item-1', item), 10000);
    assert.equal((await pub.emit('compose-books', 'rid-c', 'item-1', item)).duplicate, true);
    const got: ResultRecord[] = [];
    for await (const r of readResults(client, 'compose-books')) got.push(r);
    assert.deepEqual(got.map((r) => [r.seq, r.item]), [[first.seq, item]]);
    const violations = nodes.flatMap((n) => readFileSync(join(dir, `${n.name}.log`), 'utf8').split('\n')).filter((l) => /violation/i.test(l));
    assert.deepEqual(violations, [], 'no refused JetStream operations');
  });

  /** intruder starts a nats-server that tries to route to nats-1 without the route password. */
  async function intruder(name: string, tls: boolean): Promise<string> {
    const target = nodes[0]!;
    const [client, cluster] = await Promise.all([freePort(), freePort()]);
    const conf = join(dir, `${name}.conf`);
    const tlsBlock = tls ? `  tls { cert_file: "${certs.nats.certFile}", key_file: "${certs.nats.keyFile}", ca_file: "${certs.ca}", verify: true }\n` : '';
    writeFileSync(conf, `listen: 127.0.0.1:${client}\ncluster {\n  name: "gaffer"\n  listen: 127.0.0.1:${cluster}\n${tlsBlock}  routes: ["nats-route://127.0.0.1:${target.cluster}"]\n}\n`);
    const child = new Child({ name, cmd: which('nats-server'), args: ['-c', conf], logFile: join(dir, `${name}.log`) });
    nodes.push({ name, child: child.start(), client, cluster, monitor: 0 });
    return join(dir, `${name}.log`);
  }

  it('refuses a route that does not log in, even with a certificate from the CA', async () => {
    const log = await intruder('intruder', true);
    await waitFor(
      'the intruder route to be refused',
      async () => existsSync(log) && /Route Error 'Authorization Violation'/.test(readFileSync(log, 'utf8')),
      10000,
    );
    const r = (await (await fetch(`http://127.0.0.1:${nodes[0]!.monitor}/routez`)).json()) as { num_routes: number };
    assert.equal(r.num_routes, 2, 'nats-1 still routes to its two peers only');
  });

  it('refuses a route without TLS, and a client without TLS', async () => {
    const log = await intruder('plain-intruder', false);
    const target = readFileSync(join(dir, 'nats-1.log'), 'utf8');
    await waitFor(
      'the plain route to fail',
      async () => existsSync(log) && /TLS|tls/.test(readFileSync(log, 'utf8') + readFileSync(join(dir, 'nats-1.log'), 'utf8').slice(target.length)),
      10000,
    );
    const r = (await (await fetch(`http://127.0.0.1:${nodes[0]!.monitor}/routez`)).json()) as { num_routes: number };
    assert.equal(r.num_routes, 2, 'nats-1 still routes to its two peers only');
    const cli = normalized().services.cli!.environment!;
    await assert.rejects(connect({ servers: `localhost:${nodes[0]!.client}`, user: cli.NATS_USER!, pass: cli.NATS_PASSWORD!, tls: null, reconnect: false }));
  });
});

describe('the compose etcd cluster, run for real', { skip: SKIP || (findBinary('etcd') ? false : 'etcd is not installed') }, () => {
  let dir: string | undefined;
  const members: Child[] = [];
  const stores: EtcdStore[] = [];

  after(async () => {
    stores.forEach((s) => s.close());
    await Promise.all(members.map((m) => m.stop()));
    if (dir && process.env.GAFFER_KEEP_LOGS !== '1') rmSync(dir, { recursive: true, force: true });
  });

  it('forms over TLS; etcd-init turns auth on with the roles gaffer needs, and can run again', async () => {
    const cfg = normalized();
    dir = mkdtempSync(join(tmpdir(), 'gaffer-compose-etcd-'));
    const certs = makeCerts(join(dir, 'certs'));
    const ports = await Promise.all(ETCD_MEMBERS.flatMap(() => [freePort(), freePort()]));
    const clientPort = (i: number) => ports[2 * i]!;
    const peerPort = (i: number) => ports[2 * i + 1]!;
    // Compose's commands as they are; only addresses and paths move: loopback ports instead of
    // hostnames (the certificates name 127.0.0.1 too), the certificates and data in this directory.
    const local = (arg: string, i: number): string => {
      let a = arg
        .replace('https://0.0.0.0:2379', `https://127.0.0.1:${clientPort(i)}`)
        .replace('https://0.0.0.0:2380', `https://127.0.0.1:${peerPort(i)}`)
        .replaceAll('/etc/etcd/certs/', `${certs.dir}/`)
        .replace('/var/lib/etcd', join(dir!, ETCD_MEMBERS[i]!));
      for (const [j, m] of ETCD_MEMBERS.entries()) {
        a = a.replaceAll(`https://${m}:2379`, `https://127.0.0.1:${clientPort(j)}`).replaceAll(`https://${m}:2380`, `https://127.0.0.1:${peerPort(j)}`);
      }
      return a;
    };
    for (const [i, name] of ETCD_MEMBERS.entries()) {
      const [cmd, ...args] = cfg.services[name]!.command!;
      assert.equal(cmd, '/usr/local/bin/etcd');
      members.push(new Child({ name, cmd: which('etcd'), args: args.map((a) => local(a, i)), logFile: join(dir, `${name}.log`) }).start());
    }
    // By name, as the containers do; etcd listens on 127.0.0.1.
    const endpoints = ETCD_MEMBERS.map((_, i) => `https://localhost:${clientPort(i)}`);
    const tls = readEtcdTls({ caFile: certs.ca });
    const open = async (auth?: { username: string; password: string }, probePrefix?: string): Promise<EtcdStore> => {
      const s = await EtcdStore.connect(endpoints, { timeoutMs: 3000, tls, ...(auth ? { auth } : {}), ...(probePrefix ? { probePrefix } : {}) });
      stores.push(s);
      return s;
    };
    await waitFor('the three members to serve over TLS', () => open().then(() => true, () => undefined), 30000);

    // etcd-init, as compose runs it: the gaffer image's program with the service's environment.
    const init = cfg.services['etcd-init']!;
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, ...init.environment, ETCD_ENDPOINTS: endpoints.join(','), ETCD_CA: certs.ca };
    assert.equal(init.environment!.ETCD_CA, GAFFER_CA);
    const program = join(ROOT, 'dist', ...init.entrypoint![1]!.split('/').slice(1));
    for (const round of ['first', 'second']) {
      const r = spawnSync(process.execPath, [program], { env, encoding: 'utf8', timeout: 60000 });
      assert.equal(r.status, 0, `etcd-init (${round} run): ${r.stderr}`);
      assert.match(r.stdout, /auth on .*users root, master \(gaffer-master\), worker \(gaffer-worker\), worker-w1 \(gaffer-worker-w1\)/);
    }

    const e = init.environment!;
    await assert.rejects(open(), /user name is empty/, 'no anonymous access');
    // The healthcheck's user: permission denied, which `etcdctl endpoint health` counts as healthy.
    await assert.rejects(open({ username: 'health', password: e.GAFFER_ETCD_HEALTH_PASSWORD! }, 'health'), /permission denied/);
    const masterEnv = cfg.services['master-1']!.environment!;
    const master = await open({ username: masterEnv.ETCD_USER!, password: masterEnv.ETCD_PASSWORD! });
    await master.txn(undefined, [{ put: keys.resource('compose-check'), value: Buffer.from('x') }]);
    const workerEnv = cfg.services.worker!.environment!;
    const shared = await open({ username: workerEnv.ETCD_USER!, password: workerEnv.ETCD_PASSWORD! }, keys.assignments('worker-1a2b3c4d'));
    await shared.txn(undefined, [{ put: keys.worker('worker-1a2b3c4d'), value: Buffer.from('x') }]);
    await assert.rejects(shared.txn(undefined, [{ put: keys.candidate('1'), value: Buffer.from('x') }]), /permission denied/);
    await assert.rejects(shared.txn(undefined, [{ put: keys.resource('forged'), value: Buffer.from('x') }]), /permission denied/);
    const w1 = await open({ username: 'worker-w1', password: e.GAFFER_ETCD_WORKER_W1_PASSWORD! }, keys.assignments('w1'));
    await w1.txn(undefined, [{ put: keys.worker('w1'), value: Buffer.from('x') }]);
    await assert.rejects(w1.txn(undefined, [{ put: keys.worker('w2'), value: Buffer.from('x') }]), /permission denied/);
    await assert.rejects(w1.range(keys.assignments('w2')), /permission denied/);
    // Run twice, each role still has exactly its grants.
    const root = new Etcd3({ hosts: endpoints, credentials: { rootCertificate: tls.ca! }, auth: { username: 'root', password: e.GAFFER_ETCD_ROOT_PASSWORD! } });
    try {
      const perms = async (role: string) => (await root.role(role).permissions()).map((p) => `${p.permission} ${p.range.start.toString()}..${p.range.end.toString()}`).sort();
      assert.deepEqual(await perms('gaffer-master'), ['Readwrite gaffer/..gaffer0']);
      assert.deepEqual(await perms('gaffer-worker-w1'), ['Read gaffer/assign/w1/..gaffer/assign/w10', 'Read gaffer/checkpoints/..gaffer/checkpoints0', 'Readwrite gaffer/workers/w1..']);
    } finally {
      root.close();
    }
  });
});
