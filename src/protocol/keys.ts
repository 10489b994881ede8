// Every etcd key gaffer uses is built (and parsed) here and nowhere else.

const ROOT = 'gaffer/';

export const keys = {
  /** Everything gaffer keeps: what a warm standby watches. */
  root: ROOT,

  /** Election candidates: one key per master, bound to its lease. Lowest create revision leads. */
  electionPrefix: `${ROOT}election/`,
  candidate: (leaseId: string): string => `${ROOT}election/${leaseId}`,

  /** Live workers, bound to each worker's lease. */
  workersPrefix: `${ROOT}workers/`,
  worker: (workerId: string): string => `${ROOT}workers/${workerId}`,

  /** The source of truth for each resource, placed or pending. */
  resourcesPrefix: `${ROOT}resources/`,
  resource: (name: string): string => `${ROOT}resources/${name}`,

  /** One key per placed resource under its worker, so a worker reads only its own. */
  assignmentsPrefix: `${ROOT}assign/`,
  assignments: (workerId: string): string => `${ROOT}assign/${workerId}/`,
  assignment: (workerId: string, name: string): string => `${ROOT}assign/${workerId}/${name}`,

  /**
   * Workers the leader revoked, by id, while they may still run their tasks
   * (alive but cut off): their fence window, on a lease that outlives it, so
   * a leader that loads state meanwhile waits it out too.
   */
  fencingPrefix: `${ROOT}fencing/`,
  fencing: (workerId: string): string => `${ROOT}fencing/${workerId}`,
  /** Cordoned workers, by id: not on any lease, so a cordon outlives the worker's restarts. */
  cordonsPrefix: `${ROOT}cordons/`,
  cordon: (workerId: string): string => `${ROOT}cordons/${workerId}`,

  /** The last durable checkpoint of each resource's task, written by the leader for the attempt that owns it. */
  checkpointsPrefix: `${ROOT}checkpoints/`,
  checkpoint: (name: string): string => `${ROOT}checkpoints/${name}`,

  /**
   * Outcomes of recent writes by request id, one key per committed
   * transaction, on short-lived leases: a request re-sent after a leader
   * change is answered with its first outcome instead of running again.
   */
  dedupePrefix: `${ROOT}dedupe/`,
  /** The leader's commit chain: each transaction checks and advances it, so pipelined commits apply in order. */
  commitChain: `${ROOT}leader/chain`,
  /** A new leader's first write, fenced: once a standby's watch has seen it, it has seen every earlier write. */
  takeover: `${ROOT}leader/takeover`,
  /** One record of a leader's write outcomes: its term, the revision its state was loaded at (a reload within a term starts a new series), and a sequence number. */
  dedupe: (term: number, loadRevision: number, seq: number): string => `${ROOT}dedupe/${term}/${loadRevision}/${seq}`,
} as const;

function tail(key: string, prefix: string): string | undefined {
  return key.startsWith(prefix) ? key.slice(prefix.length) : undefined;
}

export const parseKey = {
  worker: (key: string): string | undefined => tail(key, keys.workersPrefix),
  fencing: (key: string): string | undefined => tail(key, keys.fencingPrefix),
  resource: (key: string): string | undefined => tail(key, keys.resourcesPrefix),
  assignment(key: string): { workerId: string; name: string } | undefined {
    const rest = tail(key, keys.assignmentsPrefix);
    const slash = rest?.indexOf('/') ?? -1;
    if (rest === undefined || slash <= 0) return undefined;
    return { workerId: rest.slice(0, slash), name: rest.slice(slash + 1) };
  },
};
