// The watchdog ends this process when its event loop stops turning. A paused
// (SIGSTOPped) or wedged process cannot help itself, and nats-server 2.9
// keeps delivering requests to it (its own deliveries count as activity, so
// its pings never find it stale). So a small separate process
// (watchdog-child.ts) is fed a heartbeat over IPC from our event loop, and
// SIGKILLs us when the beats stop for `ms`: the kernel then closes our
// sockets, the server drops our subscriptions at once, and the queue group
// has only live members again. Opt-in (--watchdog-ms): a debugger or a chaos
// run that pauses a process on purpose must be able to.

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** What `gaffer dev` and docker-compose run with (the README has the measurements behind it). */
export const DEV_WATCHDOG_MS = 1500;

const CHILD = fileURLToPath(new URL('./watchdog-child.js', import.meta.url));

/** beatMs: how often we beat, a tenth of the limit (at most 100 ms), so one late beat is no alarm. */
export function beatMs(limitMs: number): number {
  return Math.max(10, Math.min(100, Math.floor(limitMs / 10)));
}

export interface Watchdog {
  stop(): void;
}

/** startWatchdog forks the watchdog for this process; stop() ends it (on a graceful exit). */
export function startWatchdog(limitMs: number): Watchdog {
  const child: ChildProcess = fork(CHILD, [String(limitMs), String(process.pid)], {
    // Its own small heap, and none of our flags (an --inspect port, say).
    execArgv: ['--max-old-space-size=16'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const beat = setInterval(() => {
    if (child.connected) child.send(0);
  }, beatMs(limitMs));
  beat.unref();
  // Neither the child nor its channel keeps us alive.
  child.unref();
  child.channel?.unref();
  child.on('error', () => undefined);
  return {
    stop: () => {
      clearInterval(beat);
      if (child.connected) child.disconnect();
    },
  };
}
