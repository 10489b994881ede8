// One root pino logger per process; components take children. Pretty output only
// under `gaffer dev` (GAFFER_LOG_PRETTY=1), JSON lines otherwise.

import { pino, type Logger } from 'pino';

export type { Logger };

const REDACT = [
  'password', 'pass', 'token', 'creds', 'credentials', 'authorization',
  '*.password', '*.pass', '*.token', '*.creds', '*.credentials', '*.authorization',
];

let root: Logger | undefined;

export function rootLogger(base: { role: string; id: string }): Logger {
  const pretty = process.env.GAFFER_LOG_PRETTY === '1';
  root = pino({
    level: process.env.GAFFER_LOG_LEVEL ?? 'info',
    base,
    redact: { paths: REDACT, censor: '[redacted]' },
    ...(pretty
      ? { transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } }
      : {}),
  });
  return root;
}

/** logger returns the process root (or a silent one in libraries and tests that made none). */
export function logger(): Logger {
  return root ?? (root = pino({ level: process.env.GAFFER_LOG_LEVEL ?? 'silent' }));
}

/**
 * The messages of the log lines the chaos checker reads from workers (task
 * starts and stops, and the lines written while fencing). They are shared
 * constants so that rewording a log line cannot silently blind the checker.
 */
export const WorkerLog = {
  taskStarted: 'task started',
  taskStopped: 'task stopped',
  fencing: 'fencing: stopping every task',
  leaseOverdue: 'lease keepalive overdue; fencing',
  leaseExpired: 'lease expired on the server',
} as const;

/** The lines a leader writes as it takes over, which the benchmark reads: where its state came from and how long it took. */
export const LeaderLog = {
  read: 'leader read state',
  built: 'leader built state',
  /** A follower's warm standby has read the state and follows it: a takeover from here needs no read. */
  standbyReady: 'standby ready',
} as const;
