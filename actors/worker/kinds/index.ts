// gaffer's built-in task kinds. noop runs inline: it is trivial and honours
// its signal, and a worker may hold thousands. crawl runs in a worker thread
// like any kind from a module: it parses untrusted HTML and may use a lot of
// CPU, which must never delay the worker's lease keepalives.

import { InlineHost } from '../runtime/inline-host.js';
import { ThreadHost } from '../runtime/thread-host.js';
import type { BuiltinKind } from '../runtime/kind-modules.js';
import { noop } from './noop.js';

const CRAWL_MODULE = new URL('./crawl/module.js', import.meta.url).href;

export function builtinKinds(opts: { memoryMb?: number } = {}): BuiltinKind[] {
  return [
    { name: 'noop', host: new InlineHost(noop) },
    { name: 'crawl', host: new ThreadHost({ module: CRAWL_MODULE, kind: 'crawl', ...(opts.memoryMb ? { memoryMb: opts.memoryMb } : {}) }) },
  ];
}
