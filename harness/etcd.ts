// etcd's JSON gateway, for what the scripts ask a member directly rather than
// through the product's client: its own status (raft leader, revision, size)
// and compaction.

/** EtcdStatus: the fields of /v3/maintenance/status the scripts read (the gateway sends 64-bit numbers as strings). */
export interface EtcdStatus {
  header?: { member_id?: string; revision?: string };
  leader?: string;
  raftIndex?: string;
  dbSize?: string;
  dbSizeInUse?: string;
}

async function etcdPost(url: string, path: string, body: unknown, timeoutMs: number): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}${path}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
  const out = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(out).slice(0, 200)}`);
  return out;
}

/** etcdStatus asks one member for its status; it throws when the member does not answer in time. */
export async function etcdStatus(clientUrl: string, timeoutMs = 2000): Promise<EtcdStatus> {
  return (await etcdPost(clientUrl, '/v3/maintenance/status', {}, timeoutMs)) as EtcdStatus;
}

/** isRaftLeader says whether this member leads etcd's own raft group (false when it does not answer). */
export async function isRaftLeader(clientUrl: string): Promise<boolean> {
  try {
    const s = await etcdStatus(clientUrl, 1000);
    return s.leader !== undefined && s.leader === s.header?.member_id;
  } catch {
    return false;
  }
}

/** etcdRevision: the cluster's current revision, from whichever member answers first in order; null when none does. */
export async function etcdRevision(urls: readonly string[]): Promise<number | null> {
  for (const u of urls) {
    try {
      const s = await etcdStatus(u);
      if (s.header?.revision) return Number(s.header.revision);
    } catch {
      /* next member */
    }
  }
  return null;
}

/** etcdCompact compacts the keyspace up to `revision` through the first member that takes it; already compacted counts as done. */
export async function etcdCompact(urls: readonly string[], revision: number): Promise<boolean> {
  for (const u of urls) {
    try {
      await etcdPost(u, '/v3/kv/compaction', { revision: String(revision) }, 2000);
      return true;
    } catch (err) {
      if (/compacted/.test((err as Error).message)) return true;
    }
  }
  return false;
}
