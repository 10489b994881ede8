// The dashboard's security headers. Everything comes from the master itself
// ('self'); the one inline script, index.html's import map, is allowed by its
// hash, so editing the map needs no change here.

import { createHash } from 'node:crypto';

const IMPORT_MAP_RE = /<script\s+type="importmap"\s*>([\s\S]*?)<\/script>/g;

/** inlineScriptHashes gives the CSP source ('sha256-…') of each inline import map in an HTML page. */
export function inlineScriptHashes(html: string): string[] {
  return [...html.matchAll(IMPORT_MAP_RE)].map((m) => `'sha256-${createHash('sha256').update(m[1] ?? '').digest('base64')}'`);
}

/** contentSecurityPolicy allows only this origin: no inline code but the hashed import map, no frames, no forms. */
export function contentSecurityPolicy(indexHtml: string): string {
  return [
    "default-src 'none'",
    `script-src 'self' ${inlineScriptHashes(indexHtml).join(' ')}`.trim(),
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** securityHeaders go on every response. */
export function securityHeaders(csp: string): Record<string, string> {
  return {
    'Content-Security-Policy': csp,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
  };
}
