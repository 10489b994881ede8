#!/usr/bin/env node
// Removes compiled files whose TypeScript source is gone: tsc never deletes
// its old outputs, and `node --test dist/test/` would run a test that no
// longer exists (or import a module that was renamed). Runs after tsc in
// `npm run build`; the web assets are copied afresh by copy-web.mjs.

import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const WEB = join(dist, 'src', 'web', 'public');

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (p === WEB) continue;
    if (statSync(p).isDirectory()) {
      walk(p);
      if (readdirSync(p).length === 0) rmSync(p, { recursive: true });
      continue;
    }
    const m = /^(.*)\.js(\.map)?$/.exec(relative(dist, p));
    if (m && !existsSync(join(root, `${m[1]}.ts`))) rmSync(p);
  }
}

if (existsSync(dist)) walk(dist);
