// Where task kinds come from: gaffer's built-ins, and kind modules named on
// the worker's command line (a path or a package). A module's top-level code
// is as untrusted as its kinds, so the main thread never imports it: its kind
// names are read in a short-lived thread (thread-main.js in discover mode),
// and each attempt of one of its kinds runs in a thread of its own.

import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { KIND_RE } from '#protocol/messages.js';
import { errorText } from './context.js';
import type { TaskHost } from './host.js';
import type { ThreadData } from './thread-main.js';
import { DEFAULT_MEMORY_MB, THREAD_MAIN, ThreadHost, threadLimits } from './thread-host.js';

export type KindModuleErrorCode = 'NOT_FOUND' | 'LOAD_FAILED' | 'NO_KINDS' | 'TIMEOUT';

export class KindModuleError extends Error {
  override readonly name = 'KindModuleError';
  constructor(
    readonly code: KindModuleErrorCode,
    readonly spec: string,
    message: string,
  ) {
    super(message);
  }
}

export interface KindModule {
  /** The module's file URL. */
  module: string;
  /** Its kind names, sorted. */
  kinds: string[];
}

const isPath = (spec: string): boolean =>
  spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('file:') || isAbsolute(spec) || /\.[mc]?js$/.test(spec);

async function resolveSpec(spec: string, cwd: string): Promise<string> {
  const fail = (why: string): never => {
    throw new KindModuleError('NOT_FOUND', spec, `task module "${spec}" not found: ${why}`);
  };
  if (!isPath(spec)) {
    try {
      return pathToFileURL(createRequire(join(cwd, 'x.js')).resolve(spec)).href;
    } catch (err) {
      return fail(`no package of that name resolves from ${cwd} (${errorText(err).split('\n')[0]})`);
    }
  }
  const file = spec.startsWith('file:') ? fileURLToPath(spec) : resolve(cwd, spec);
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile()) fail(`${file} is not a file`);
  return pathToFileURL(file).href;
}

/**
 * loadKindModule resolves `spec` against `cwd` and lists the kinds its
 * default export defines, importing it in a thread that is terminated after
 * timeoutMs (top-level code that never returns). Throws KindModuleError.
 */
export async function loadKindModule(spec: string, cwd = process.cwd(), timeoutMs = 10_000): Promise<KindModule> {
  const module = await resolveSpec(spec, cwd);
  const fail = (code: KindModuleErrorCode, why: string): never => {
    throw new KindModuleError(code, spec, `task module ${module}: ${why}`);
  };
  const data: ThreadData = { discover: true, module };
  let worker: Worker;
  try {
    worker = new Worker(THREAD_MAIN, { workerData: data, resourceLimits: threadLimits(DEFAULT_MEMORY_MB), stdout: true, stderr: true });
  } catch (err) {
    return fail('LOAD_FAILED', `starting a thread to load it failed: ${errorText(err)}`);
  }
  // Top-level console output is not the worker's business; drain it so it cannot pile up.
  worker.stdout.resume();
  worker.stderr.resume();
  type Heard = { kinds: unknown; why: unknown } | { error: string; code: KindModuleErrorCode };
  let timer: NodeJS.Timeout | undefined;
  const heard = await new Promise<Heard>((settle) => {
    let crash: string | undefined;
    timer = setTimeout(
      () => settle({ code: 'TIMEOUT', error: `loading it did not finish within ${timeoutMs} ms (top-level code that never returns?)` }),
      timeoutMs,
    );
    worker.on('message', (m: unknown) => {
      const msg = (m ?? {}) as { t?: unknown; kinds?: unknown; why?: unknown; error?: unknown };
      if (msg.t === 'kinds') settle({ kinds: msg.kinds, why: msg.why });
      else if (msg.t === 'failed') settle({ code: 'LOAD_FAILED', error: errorText(msg.error) });
    });
    worker.on('error', (err: unknown) => (crash ??= `loading it crashed its thread: ${errorText(err)}`));
    worker.on('exit', (code) => settle({ code: 'LOAD_FAILED', error: crash ?? `its top-level code ended the thread (exit code ${code})` }));
  });
  clearTimeout(timer);
  // Only now is the module's code certainly stopped.
  await worker.terminate().catch(() => {});
  if ('error' in heard) return fail(heard.code, heard.error);
  const kinds = Array.isArray(heard.kinds) ? heard.kinds.filter((k): k is string => typeof k === 'string') : [];
  if (kinds.length === 0) return fail('NO_KINDS', `it defines no task kinds: ${typeof heard.why === 'string' ? heard.why : 'none found'}`);
  // A name no spec.kind can match could never run: refuse the module rather than skip it quietly.
  const bad = kinds.find((k) => !KIND_RE.test(k));
  if (bad !== undefined) return fail('NO_KINDS', `kind name ${JSON.stringify(bad.slice(0, 80))} does not match ${KIND_RE.source}`);
  return { module, kinds: kinds.sort() };
}

export interface BuiltinKind {
  name: string;
  host: TaskHost;
}

/** KindRegistry maps each kind name to the host that runs it; a name is defined once across all sources. */
export class KindRegistry {
  private readonly hosts = new Map<string, { host: TaskHost; from: string }>();

  constructor(modules: readonly KindModule[], builtins: readonly BuiltinKind[] = [], opts: { memoryMb?: number } = {}) {
    const add = (name: string, host: TaskHost, from: string): void => {
      const had = this.hosts.get(name);
      if (had) throw new Error(`task kind "${name}" is defined twice: by ${had.from} and by ${from}`);
      this.hosts.set(name, { host, from });
    };
    for (const b of builtins) add(b.name, b.host, "gaffer's built-in kinds");
    for (const m of modules) {
      for (const kind of m.kinds) add(kind, new ThreadHost({ module: m.module, kind, memoryMb: opts.memoryMb }), m.module);
    }
  }

  /** load loads every module spec (in order, each with its own timeout) and builds the registry. */
  static async load(
    specs: readonly string[],
    builtins: readonly BuiltinKind[] = [],
    opts: { cwd?: string; timeoutMs?: number; memoryMb?: number } = {},
  ): Promise<KindRegistry> {
    const modules: KindModule[] = [];
    for (const s of specs) modules.push(await loadKindModule(s, opts.cwd, opts.timeoutMs));
    return new KindRegistry(modules, builtins, opts);
  }

  kinds(): string[] {
    return [...this.hosts.keys()].sort();
  }

  host(name: string): TaskHost | undefined {
    return this.hosts.get(name)?.host;
  }
}
