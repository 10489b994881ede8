#!/usr/bin/env node
// Installs what `npm start`, `npm test` and `npm run bench` need on a fresh
// machine: npm dependencies, and the Debian packages nats-server and
// etcd-server (when running as root with apt). Otherwise it names what is
// missing and stops. Plain Node, no dependencies: it runs before they exist.

import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function have(bin) {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin']) {
    if (dir && existsSync(join(dir, bin))) return true;
  }
  return false;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) {
    console.error(`ensure: \`${cmd} ${args.join(' ')}\` failed (exit ${r.status})`);
    process.exit(1);
  }
}

// 1. npm dependencies: install when node_modules is missing or older than the lockfile.
const lock = join(root, 'package-lock.json');
const marker = join(root, 'node_modules', '.package-lock.json');
if (!existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs) {
  console.error('ensure: installing npm dependencies (npm ci)…');
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

// 2. Servers.
const needed = [
  ['nats-server', 'nats-server'],
  ['etcd', 'etcd-server'],
];
// The test suite also validates docker-compose.yml (no Docker engine needed).
if (process.env.npm_lifecycle_event === 'pretest') needed.push(['docker-compose', 'docker-compose']);
// The dashboard's browser test drives Debian's chromium through puppeteer-core (which downloads none).
if (process.env.npm_lifecycle_event === 'pretest') needed.push(['chromium', 'chromium']);
const missing = needed.filter(([bin]) => !have(bin));
if (missing.length > 0) {
  const pkgs = missing.map(([, pkg]) => pkg);
  const isRoot = process.getuid?.() === 0;
  if (isRoot && have('apt-get')) {
    console.error(`ensure: installing ${pkgs.join(' ')} with apt-get…`);
    run('apt-get', ['update', '-q'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    run('apt-get', ['install', '-y', '-q', ...pkgs], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } else {
    console.error(`ensure: missing ${missing.map(([b]) => b).join(' and ')}.`);
    console.error(`  On Debian/Ubuntu, as root: apt-get install -y ${pkgs.join(' ')}`);
    console.error('  Elsewhere: install nats-server (https://nats.io) and etcd 3.4+ so they are on PATH.');
    process.exit(1);
  }
}
