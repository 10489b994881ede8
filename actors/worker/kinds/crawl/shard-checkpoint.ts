// A shard's etcd checkpoint: its counters, the number of seen and sent deltas
// written (seen-log.ts, sent-log.ts) and the politeness state of at most MAX_HOSTS_KEPT hosts
// (Crawl-delays, Retry-After blocks still running, parked hosts). Nothing in
// it grows with the number of URLs, so it stays a few KB whatever the
// crawl's size; the frontier and the seen-set live in JetStream.

import { MAX_STATE_BYTES, type Json, type TaskContext } from '#kinds/api.js';
import type { Clock } from '#platform/clock.js';
import { stateBytes } from './checkpoint.js';
import type { Politeness } from './politeness.js';
import { MAX_HOSTS_KEPT, type ShardCrawlResult } from './shard-items.js';
import { noSkips, type ShardCounts, type Skips } from './shard-progress.js';

export const SHARDED_CHECKPOINT_VERSION = 2;

interface HostState {
  delays?: { [host: string]: number };
  /** Wall-clock ms until which the host answered 429/503. */
  blocks?: { [host: string]: number };
}

/** What a shard starts from: all empty on a fresh start (found: false). */
export interface ShardStart {
  found: boolean;
  counts: ShardCounts;
  parked: string[];
  /** Seen deltas written at least. */
  seen: number;
  /** Sent deltas written at least (sent-log.ts). */
  sent: number;
  /** Crawl-delay seconds per host. */
  delays: Map<string, number>;
  /** Wall-clock ms until which each host is blocked. */
  blocks: Map<string, number>;
}

const count = (v: unknown): number => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 0);

/** readShardCheckpoint reads what it can of `checkpointed`, dropping what is malformed. */
export function readShardCheckpoint(checkpointed: Json | undefined): ShardStart {
  const cp = checkpointed as { [k: string]: Json } | undefined;
  const hosts = (cp?.hosts ?? {}) as HostState;
  const delays = new Map<string, number>();
  for (const [h, s] of Object.entries(hosts.delays ?? {})) if (typeof s === 'number' && s > 0) delays.set(h, s);
  const blocks = new Map<string, number>();
  for (const [h, until] of Object.entries(hosts.blocks ?? {})) if (typeof until === 'number') blocks.set(h, until);
  return {
    found: cp !== undefined,
    counts: {
      pages: count(cp?.pages), errors: count(cp?.errors), skipped: count(cp?.skipped), skips: skipsOf(cp?.skips),
      duplicates: count(cp?.duplicates), deferred: count(cp?.deferred), resent: count(cp?.resent),
    },
    parked: Array.isArray(cp?.parked) ? cp.parked.filter((h): h is string => typeof h === 'string') : [],
    seen: count(cp?.seen),
    sent: count(cp?.sent),
    delays,
    blocks,
  };
}

function skipsOf(v: Json | undefined): Skips {
  const out = noSkips();
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return out;
  for (const k of Object.keys(out) as Array<keyof Skips>) out[k] = count(v[k]);
  return out;
}

/** restorePoliteness sets the kept Crawl-delays and the Retry-After blocks still running. */
export function restorePoliteness(politeness: Politeness, start: ShardStart, clock: Clock): void {
  for (const [h, s] of start.delays) politeness.setCrawlDelay(h, s);
  const wall = clock.wall();
  for (const [h, until] of start.blocks) if (until > wall) politeness.block(h, clock.now() + (until - wall));
}

/** ShardCheckpointer writes the checkpoint; a refusal means another worker owns the shard now, which is fatal (fail). */
export class ShardCheckpointer {
  private warnedOversize = false;

  constructor(
    private readonly ctx: TaskContext,
    private readonly politeness: Politeness,
    private readonly clock: Clock,
    private readonly fail: (err: Error) => void,
  ) {}

  /** save never rejects; `hosts` are the hosts with queued items, whose blocks are kept. */
  async save(result: ShardCrawlResult, logs: { seen: number; sent: number }, delays: ReadonlyMap<string, number>, hosts: Iterable<[string, number]>): Promise<void> {
    const wall = this.clock.wall();
    const now = this.clock.now();
    const blocks: { [host: string]: number } = {};
    let kept = 0;
    for (const [h] of hosts) {
      const until = this.politeness.blockedUntil(h);
      if (until > now && kept++ < MAX_HOSTS_KEPT) blocks[h] = Math.round(wall + (until - now));
    }
    const state: Json = { v: SHARDED_CHECKPOINT_VERSION, ...result, ...logs, hosts: { delays: Object.fromEntries(delays), blocks } };
    if (stateBytes(state) > MAX_STATE_BYTES) {
      if (!this.warnedOversize) this.ctx.log.warn({ bytes: stateBytes(state) }, 'crawl: shard checkpoint too big (too many parked hosts?); keeping the last one');
      this.warnedOversize = true;
      return;
    }
    try {
      await this.ctx.checkpoint(state);
    } catch (err) {
      this.fail(new Error(`crawl: checkpoint refused, stopping: ${(err as Error).message}`, { cause: err }));
    }
  }
}
