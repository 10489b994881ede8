#!/usr/bin/env node
// Copies the dashboard's static files (src/web/public/**) next to the compiled
// server, so `new URL('./public/', import.meta.url)` finds them in a build:
// dist/src/web/public/ by default, or <out>/src/web/public/ with an argument.
// Runs after tsc in `npm run build` (and so in the Docker image's build stage).

import { cpSync, existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const from = join(root, 'src', 'web', 'public');
const out = resolve(root, process.argv[2] ?? 'dist');
const to = join(out, 'src', 'web', 'public');

if (!existsSync(from)) {
  console.error(`copy-web: ${from} is missing`);
  process.exit(1);
}
// A clean copy: files removed from src/web/public/ must not linger in the build.
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true });
