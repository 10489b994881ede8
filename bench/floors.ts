// Floors: what the transport and the store cost before gaffer does anything,
// on the same machine and in the same run as the gaffer cells.
//   echo       client -> responder process -> client
//   hop        client -> forwarder process -> echo process -> client
//              (the forwarder re-publishes with the client's reply subject,
//              as a follower does; the echo answers the client directly)
//   serialized client -> process that, per request, locks, does one etcd put, answers

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import { startEtcd, startNats, waitFor, type EtcdCluster, type NatsServer } from '#devcluster/servers.js';
import type { Child } from '#devcluster/child.js';
import type { BenchConfig } from './config.js';
import { runLoad, type Cell } from './load.js';
import { cpuShare, startResponder, stopAll } from './procs.js';
import { benchConnect, request, runId } from './wire.js';

export type Levels = Record<string, Cell>;
export interface FloorsResult {
  echo: Levels;
  hop: Levels;
  serialized: Levels;
}

const SUBJECT = { echo: 'bench.echo', hop: 'bench.hop', serialized: 'bench.serial' } as const;

export async function floors(cfg: BenchConfig, log: (s: string) => void): Promise<FloorsResult> {
  const dir = mkdtempSync(join(tmpdir(), 'gaffer-bench-floors-'));
  let nats: NatsServer | undefined;
  let etcd: EtcdCluster | undefined;
  let nc: NatsConnection | undefined;
  const children: Child[] = [];
  try {
    nats = await startNats({ dir: join(dir, 'nats') });
    etcd = await startEtcd({ dir: join(dir, 'etcd') });
    const url = nats.url;
    children.push(
      startResponder(dir, 'echo', ['echo', '--nats', url, '--subject', SUBJECT.echo]),
      startResponder(dir, 'forwarder', ['forward', '--nats', url, '--subject', SUBJECT.hop, '--to', SUBJECT.echo]),
      startResponder(dir, 'serial', ['serial', '--nats', url, '--subject', SUBJECT.serialized, '--etcd', etcd.endpoints.join(',')]),
    );
    const conn = await benchConnect(url, 'bench-floors');
    nc = conn;
    for (const s of Object.values(SUBJECT)) {
      await waitFor(`a responder on ${s}`, () => request(conn, s, { name: 'ready' }, { timeoutMs: 1000 }).then(() => true), 20000);
    }
    const out: FloorsResult = { echo: {}, hop: {}, serialized: {} };
    const pids = {
      bench: process.pid,
      'nats-server': nats.child.pid,
      etcd1: etcd.members[0]?.child.pid,
      echo: children[0]!.pid,
      forwarder: children[1]!.pid,
      serial: children[2]!.pid,
    };
    for (const kind of ['echo', 'hop', 'serialized'] as const) {
      for (const inflight of cfg.levels) {
        const { value: cell, cpu } = await cpuShare(pids, () =>
          runLoad({ inflight, warmupMs: cfg.warmupMs, durationMs: cfg.cellMs }, async (i) => {
            await request(conn, SUBJECT[kind], { name: `f-${runId}-${kind}-${inflight}-${i}` }, { gaffer: kind === 'serialized' });
          }),
        );
        cell.cpu = cpu;
        out[kind][String(inflight)] = cell;
        log(`floors ${kind}@${inflight}: ${cell.throughput}/s p50 ${cell.p50} ms p99 ${cell.p99} ms${cell.errors ? ` (${cell.errors} errors)` : ''}`);
      }
    }
    return out;
  } finally {
    await nc?.close().catch(() => undefined);
    await stopAll(children);
    await nats?.stop();
    await etcd?.stop();
    if (!cfg.keepLogs) rmSync(dir, { recursive: true, force: true });
  }
}
