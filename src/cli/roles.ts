// The long-running roles as commands: `gaffer master`, `gaffer worker` and
// `gaffer dev`. What a role runs is given by the composition root
// (bin/gaffer.ts), so the CLI never depends on the actors.

import type { Command } from 'commander';
import { DEFAULTS, parseLabels, parseNatsNodes, parseOnOff, parsePositiveInt, parseReplicas, parseTtl, UsageError, type CommonOptions, type ProcessConfig } from '#platform/config.js';
import { rootLogger } from '#platform/log.js';
import { startWatchdog } from '#platform/watchdog.js';
import { Exit } from './exit.js';
import { processConfig, processOptions, type ConnOptions } from './options.js';
import { examples } from './help.js';

export interface MasterOptions {
  serveClients: boolean;
  /** Keep a warm standby of the leader's state while following. */
  standby: boolean;
  /** Copies of the results stream a clustered JetStream keeps (1 on a single server). */
  resultsReplicas: number;
  rebalance: { enabled: boolean; max: number; intervalMs: number };
}

export interface WorkerOptions {
  capacity: number;
  /** Task-kind modules: paths or package names. */
  tasks: string[];
  stopGraceMs: number;
  taskMemoryMb: number;
  labels: Record<string, string>;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export interface Running {
  stop(): Promise<void>;
}

/** Roles: how to start each long-running role, from its resolved configuration. */
export interface Roles {
  master(cfg: ProcessConfig & MasterOptions): Promise<Running>;
  worker(cfg: ProcessConfig & WorkerOptions): Promise<Running>;
}

/** serve starts a long-running role (with its watchdog, if asked) and wires SIGINT/SIGTERM to its graceful stop. */
async function serve(role: 'master' | 'worker', cfg: ProcessConfig, start: () => Promise<{ stop(): Promise<void> }>): Promise<void> {
  const watchdog = cfg.watchdogMs ? startWatchdog(cfg.watchdogMs) : undefined;
  let proc: { stop(): Promise<void> };
  try {
    proc = await start();
  } catch (err) {
    process.stderr.write(`gaffer: ${role} cannot start: ${(err as Error).message}\n`);
    process.exit(err instanceof UsageError ? Exit.usage : Exit.unreachable);
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await proc.stop().catch(() => undefined);
    watchdog?.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

export function addRoleCommands(program: Command, roles: Roles): void {
  processOptions(program.command('master').description('run a master (candidate leader)'))
    .option('--no-serve-clients', 'do not serve client subjects (lead only; for benchmarks)')
    .option('--no-standby', 'keep no warm copy of the state while following (env GAFFER_STANDBY=off): less memory, but a takeover reads all state from etcd')
    .option('--http-port <port>', 'serve the web dashboard on this port (env GAFFER_HTTP_PORT; GAFFER_HTTP_HOST=0.0.0.0 to expose it)')
    .option('--rebalance <on|off>', 'move resources from the most to the least loaded workers, in rounds (default on)')
    .option('--rebalance-max <n>', `most moves per rebalance round, and at most 10% of all resources (default ${DEFAULTS.rebalanceMax})`)
    .option('--rebalance-interval-ms <ms>', `least time between rebalance rounds (default ${DEFAULTS.rebalanceIntervalMs})`)
    .option('--results-replicas <n>', 'copies of the task results stream in a clustered JetStream, 1 to 5 and at most the cluster size (env GAFFER_RESULTS_REPLICAS; default 1)')
    .addHelpText(
      'after',
      examples([
        'gaffer master --id m1 --nats nats://127.0.0.1:4222 --etcd http://127.0.0.1:2379 --ttl 3',
        'gaffer master --rebalance off',
        'gaffer master --nats nats://n1:4222,nats://n2:4222,nats://n3:4222 --results-replicas 3',
      ]),
    )
    .action(async (o: CommonOptions & ConnOptions & { serveClients: boolean; standby: boolean; rebalance?: string; rebalanceMax?: string; rebalanceIntervalMs?: string; resultsReplicas?: string }) => {
      const cfg = {
        ...processConfig('master', o, program),
        serveClients: o.serveClients,
        // --no-standby, or GAFFER_STANDBY=off.
        standby: o.standby && parseOnOff(process.env.GAFFER_STANDBY, 'GAFFER_STANDBY', true),
        resultsReplicas: parseReplicas(o.resultsReplicas ?? process.env.GAFFER_RESULTS_REPLICAS),
        rebalance: {
          enabled: parseOnOff(o.rebalance, '--rebalance', true),
          max: parsePositiveInt(o.rebalanceMax, '--rebalance-max', DEFAULTS.rebalanceMax),
          intervalMs: parsePositiveInt(o.rebalanceIntervalMs, '--rebalance-interval-ms', DEFAULTS.rebalanceIntervalMs),
        },
      };
      rootLogger({ role: 'master', id: cfg.id });
      await serve('master', cfg, () => roles.master(cfg));
    });

  processOptions(program.command('worker').description('run a worker'))
    .option('--capacity <n>', `most resources this worker takes (default ${DEFAULTS.capacity})`)
    .option('--tasks <module>', 'a task-kind module (path or package name) whose default export maps kind names to { run(ctx) }; repeatable', collect)
    .option('--stop-grace-ms <ms>', `how long a task may take to stop before it is stopped by force (default ${DEFAULTS.stopGraceMs})`)
    .option('--task-memory-mb <mb>', `heap limit of each task thread (default ${DEFAULTS.taskMemoryMb})`)
    .option('--label <key=value>', 'a label for placement constraints and preferences; repeatable', collect)
    .addHelpText(
      'after',
      examples(['gaffer worker --id w1 --capacity 500 --nats nats://127.0.0.1:4222', 'gaffer worker --tasks ./examples/kinds.mjs --tasks my-kinds-package']),
    )
    .action(async (o: CommonOptions & ConnOptions & { capacity?: string; tasks?: string[]; stopGraceMs?: string; taskMemoryMb?: string; label?: string[] }) => {
      const cfg = {
        ...processConfig('worker', o, program),
        labels: parseLabels(o.label ?? []),
        capacity: parsePositiveInt(o.capacity, '--capacity', DEFAULTS.capacity),
        tasks: o.tasks ?? [],
        stopGraceMs: parsePositiveInt(o.stopGraceMs, '--stop-grace-ms', DEFAULTS.stopGraceMs),
        taskMemoryMb: parsePositiveInt(o.taskMemoryMb, '--task-memory-mb', DEFAULTS.taskMemoryMb),
      };
      rootLogger({ role: 'worker', id: cfg.id });
      await serve('worker', cfg, () => roles.worker(cfg));
    });

  program
    .command('dev')
    .description('run a local cluster: nats-server, etcd, 3 masters, 3 workers')
    .option('--masters <n>', 'masters to run', '3')
    .option('--workers <n>', 'workers to run', '3')
    .option('--ttl <seconds>', 'lease TTL in seconds', String(DEFAULTS.ttlSeconds))
    .option('--nats-nodes <n>', 'nats-servers to run, routed into one cluster (3: results kept in 3 copies; masters and workers spread over the nodes)', '1')
    .option('--secure', 'TLS and auth on: NATS with TLS and nats.conf\'s users, etcd with TLS and RBAC, certificates made by scripts/make-certs.sh')
    .addHelpText('after', examples(['gaffer dev', 'gaffer dev --masters 1 --workers 5', 'gaffer dev --nats-nodes 3', 'gaffer dev --secure']))
    .action(async (o: { masters: string; workers: string; ttl: string; natsNodes: string; secure?: boolean }) => {
      const { runDev } = await import('#devcluster/dev.js');
      await runDev({
        masters: parsePositiveInt(o.masters, '--masters', 3),
        workers: parsePositiveInt(o.workers, '--workers', 3),
        ttlSeconds: parseTtl(o.ttl),
        natsNodes: parseNatsNodes(o.natsNodes),
        secure: o.secure === true,
      }).catch((err) => {
        process.stderr.write(`gaffer: dev cluster failed: ${(err as Error).message}\n`);
        process.exit(Exit.unreachable);
      });
    });
}
