#!/usr/bin/env node
// Installs what `npm start`, `npm test` and `npm run bench` need on a fresh
// machine: npm dependencies, and the Debian packages nats-server and
// etcd-server (when running as root with apt). Otherwise it names what is
// missing and stops. Before the bench it also installs python3-scrapy, which
// the crawl part runs beside gaffer; that one is optional (without it the part
// measures gaffer alone), so failing to get it only warns. Plain Node, no
// dependencies: it runs before they exist.

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
const canApt = process.getuid?.() === 0 && have('apt-get');
const aptEnv = { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } };
let updated = false;
if (missing.length > 0) {
  const pkgs = missing.map(([, pkg]) => pkg);
  if (canApt) {
    console.error(`ensure: installing ${pkgs.join(' ')} with apt-get…`);
    run('apt-get', ['update', '-q'], aptEnv);
    updated = true;
    run('apt-get', ['install', '-y', '-q', ...pkgs], aptEnv);
  } else {
    console.error(`ensure: missing ${missing.map(([b]) => b).join(' and ')}.`);
    console.error(`  On Debian/Ubuntu, as root: apt-get install -y ${pkgs.join(' ')}`);
    console.error('  Elsewhere: install nats-server (https://nats.io) and etcd 3.4+ so they are on PATH.');
    process.exit(1);
  }
}

// 3. Scrapy for the bench's crawl part, under Debian's own interpreter: the
// bench runs /usr/bin/python3, since another python3 may come first on PATH.
function importsScrapy() {
  return spawnSync('/usr/bin/python3', ['-c', 'import scrapy'], { stdio: 'ignore' }).status === 0;
}
if (process.env.npm_lifecycle_event === 'prebench' && !importsScrapy()) {
  const how = 'On Debian/Ubuntu, as root: apt-get install -y python3-scrapy';
  if (canApt) {
    console.error('ensure: installing python3-scrapy with apt-get (the bench crawls beside Scrapy)…');
    const ok = (updated || spawnSync('apt-get', ['update', '-q'], { stdio: 'inherit', ...aptEnv }).status === 0)
      && spawnSync('apt-get', ['install', '-y', '-q', 'python3-scrapy'], { stdio: 'inherit', ...aptEnv }).status === 0;
    if (!ok) console.error(`ensure: could not install python3-scrapy; the bench's crawl part will measure gaffer alone. ${how}`);
  } else {
    console.error(`ensure: python3-scrapy is missing; the bench's crawl part will measure gaffer alone. ${how}`);
  }
}
