// Child is a process we started, and only that: we signal it by its own PID,
// keep its output in a log file, and can pause, resume, kill and restart it.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { sleep } from '#platform/clock.js';

export interface ChildSpec {
  name: string;
  cmd: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Output goes here (appended across restarts). */
  logFile: string;
  /** Inherit stdout/stderr instead (for `gaffer dev`). */
  inherit?: boolean;
}

const live = new Set<Child>();
let hooked = false;

/**
 * On exit of this process, take every child we started with us. A signal's
 * default action skips 'exit' handlers: the test runner stops a file that
 * overran its timeout with SIGTERM, and its servers and gaffer processes
 * outlived it. So a terminating signal nobody else handles kills the children
 * first and is then raised again with its default action.
 */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const c of live) c.signal('SIGKILL');
  };
  process.on('exit', killAll);
  for (const sig of ['SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      if (process.listenerCount(sig) > 1) return; // someone else (gaffer dev) stops gracefully
      killAll();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

export class Child {
  private proc: ChildProcess | undefined;
  private log: WriteStream | undefined;
  private exitPromise: Promise<number | null> = Promise.resolve(null);
  /** Settles once the process's output pipes have closed too. */
  private closed: Promise<void> = Promise.resolve();

  constructor(readonly spec: ChildSpec) {
    hookExit();
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  start(): this {
    const { cmd, args, env, inherit } = this.spec;
    this.log = inherit ? undefined : createWriteStream(this.spec.logFile, { flags: 'a' });
    const proc = spawn(cmd, args, {
      env: env ?? process.env,
      stdio: inherit ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
    });
    if (!inherit) {
      proc.stdout?.pipe(this.log!, { end: false });
      proc.stderr?.pipe(this.log!, { end: false });
    }
    this.proc = proc;
    live.add(this);
    this.closed = new Promise((resolve) => proc.on('close', () => resolve()));
    this.exitPromise = new Promise((resolve) => {
      proc.on('exit', (code) => {
        live.delete(this);
        resolve(code);
      });
      proc.on('error', () => {
        live.delete(this);
        resolve(null);
      });
    });
    return this;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.proc!.kill(sig);
  }

  pause(): void {
    this.signal('SIGSTOP');
  }

  resume(): void {
    this.signal('SIGCONT');
  }

  /** exited resolves with the exit code once the process is gone. */
  exited(): Promise<number | null> {
    return this.exitPromise;
  }

  /** stop asks politely (SIGTERM, resuming it first if paused), then SIGKILLs after graceMs. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.resume();
    this.signal('SIGTERM');
    const t = setTimeout(() => this.signal('SIGKILL'), graceMs);
    await this.exited();
    clearTimeout(t);
    // 'exit' can come before the last output is read; ending the log then would
    // make that output a write after end. A pipe some grandchild still holds
    // open must not keep us, though.
    const log = this.log;
    await Promise.race([this.closed, sleep(2000, undefined, { ref: false })]);
    this.proc?.stdout?.unpipe(log);
    this.proc?.stderr?.unpipe(log);
    log?.end();
  }

  async kill(): Promise<void> {
    this.signal('SIGKILL');
    await this.exited();
  }

  async restart(): Promise<void> {
    await this.stop();
    this.start();
  }
}
