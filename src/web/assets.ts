// Assets: every file the dashboard serves, read into memory once at start.
// The app's own files come from public/ beside this module (copied to
// dist/src/web/public/ by scripts/copy-web.mjs); the vendor modules (preact,
// its hooks, htm) come from node_modules through an allow-list. A request
// names a file by an exact key in a map, never by a filesystem path, so no
// URL can reach anything else.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where index.html, app.js and style.css live: src/web/public/ in the tree, dist/src/web/public/ once built. */
export const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));

export interface Asset {
  body: Buffer;
  /** The Content-Type header. */
  type: string;
  /** A strong validator, for If-None-Match. */
  etag: string;
}

export interface Assets {
  index: Asset;
  /** GET /assets/<name>: the app's own files. */
  app: ReadonlyMap<string, Asset>;
  /** GET /vendor/<name>: the allow-listed vendor modules. */
  vendor: ReadonlyMap<string, Asset>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
};

/** App file names: plain words, one dot; anything else in public/ is not served. */
const APP_NAME_RE = /^[a-z0-9][a-z0-9_-]*\.[a-z0-9]+$/;

const require = createRequire(import.meta.url);

/**
 * VENDOR is the allow-list: the URL name under /vendor/ and how to find the
 * file in node_modules. The names match index.html's import map.
 */
export const VENDOR: Readonly<Record<string, () => string>> = {
  'preact.mjs': () => require.resolve('preact'),
  'hooks.mjs': () => require.resolve('preact/hooks'),
  // htm's `require` entry is CommonJS; its ES module sits beside it.
  'htm.mjs': () => join(dirname(require.resolve('htm')), 'htm.module.js'),
};

function asset(body: Buffer, name: string): Asset {
  const type = TYPES[extname(name)] ?? 'application/octet-stream';
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  return { body, type, etag };
}

/** loadAssets reads public/ and the vendor modules; it throws if index.html or a vendor module is missing. */
export function loadAssets(dir: string = PUBLIC_DIR): Assets {
  const app = new Map<string, Asset>();
  let index: Asset | undefined;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (!APP_NAME_RE.test(name) || !(extname(name) in TYPES) || !statSync(path).isFile()) continue;
    const a = asset(readFileSync(path), name);
    if (name === 'index.html') index = a;
    else app.set(name, a);
  }
  if (!index) throw new Error(`dashboard: no index.html in ${dir} (was the build's copy-web step run?)`);
  const vendor = new Map<string, Asset>();
  for (const [name, resolve] of Object.entries(VENDOR)) vendor.set(name, asset(readFileSync(resolve()), name));
  return { index, app, vendor };
}
