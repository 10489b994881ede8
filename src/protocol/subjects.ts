// Every NATS subject and header name gaffer uses is built here and nowhere else.

/** Queue group shared by every master for client-facing subjects. */
export const MASTERS_QUEUE = 'masters';

/** Client-facing subjects, served by any master. */
export const ClientSubject = {
  add: 'resource.add',
  delete: 'resource.delete',
  get: 'resource.get',
  list: 'resource.list',
  status: 'cluster.status',
  restart: 'resource.restart',
  explain: 'resource.explain',
  cordon: 'worker.cordon',
  uncordon: 'worker.uncordon',
  drain: 'worker.drain',
  schedulePause: 'schedule.pause',
  scheduleResume: 'schedule.resume',
  scheduleTrigger: 'schedule.trigger',
  scheduleBackfill: 'schedule.backfill',
  apply: 'resource.apply',
} as const;
export type ClientSubject = (typeof ClientSubject)[keyof typeof ClientSubject];

const CLIENT_SUBJECTS = new Set<string>(Object.values(ClientSubject));
export function isClientSubject(s: unknown): s is ClientSubject {
  return typeof s === 'string' && CLIENT_SUBJECTS.has(s);
}

/**
 * Subjects masters serve for workers, in the same queue group and forwarded
 * to the leader the same way, but not open to clients.
 */
export const WorkerSubject = {
  report: 'task.report',
} as const;
export type WorkerSubject = (typeof WorkerSubject)[keyof typeof WorkerSubject];

/** Any subject a master takes requests on. */
export type RequestSubject = ClientSubject | WorkerSubject;
const REQUEST_SUBJECTS = new Set<string>([...Object.values(ClientSubject), ...Object.values(WorkerSubject)]);
export function isRequestSubject(s: unknown): s is RequestSubject {
  return typeof s === 'string' && REQUEST_SUBJECTS.has(s);
}

/** Headers that carry a forwarded request's origin across the hop to the leader. */
export const Header = {
  contentType: 'Content-Type',
  subject: 'Gaffer-Subject',
  origin: 'Gaffer-Origin',
  /** Idempotency key: a request re-sent with the same id is answered with the first outcome. */
  requestId: 'Gaffer-Request-Id',
  /**
   * How long (ms) the client waits for the answer. A request still queued at
   * the leader after that is answered TIMEOUT without being planned: its
   * client has given up, and has probably sent it again.
   */
  timeoutMs: 'Gaffer-Timeout-Ms',
  /** A liveness probe: answered at once, with an empty body, by whoever subscribes. */
  ping: 'Gaffer-Ping',
  /** On a stored task result, and on a shard-queue item: the id of the resource incarnation that emitted or sent it. */
  resourceId: 'Gaffer-Resource-Id',
  /** On a stored task result of a scheduled resource: the run that emitted it. */
  run: 'Gaffer-Run',
  /** JetStream's dedupe key: a result published again with the same id is stored once. */
  msgId: 'Nats-Msg-Id',
} as const;

/**
 * The JetStream stream that keeps task results (subjects `results.>`).
 * Masters create it; it outlives every resource.
 */
export const RESULTS_STREAM = 'GAFFER_RESULTS';

/**
 * The JetStream work-queue stream of shard-to-shard items (subjects
 * `shards.<resource id>.<index>`): one subject, and one durable consumer,
 * per shard. Masters create it; items are removed as they are acknowledged.
 */
export const SHARDS_STREAM = 'GAFFER_SHARDS';

/**
 * The JetStream KV bucket behind `ctx.store` (its stream is KV_<bucket>):
 * each resource's keys under `<resource id>.`. Masters create it.
 */
export const TASK_STATE_BUCKET = 'GAFFER_TASK_STATE';

export const subjects = {
  /** Only the current leader subscribes here; followers re-publish client requests to it. */
  leader: (masterId: string): string => `master.leader.${masterId}`,
  /** The leader acknowledges forwarded requests to their forwarding master here, one message per batch. */
  masterAck: (masterId: string): string => `master.ack.${masterId}`,
  workerAssign: (workerId: string): string => `worker.${workerId}.assign`,
  workerStatus: (workerId: string): string => `worker.${workerId}.status`,
  allWorkerAssign: 'worker.*.assign',
  /** Observable events, `events.<kind...>`, e.g. events.leader.elected. */
  event: (kind: string): string => `events.${kind}`,
  allEvents: 'events.>',
  /**
   * A resource's results. Names may contain dots, so `results.a` is a prefix
   * of `results.a.b`: read one resource by this exact subject, never by a
   * wildcard under it.
   */
  results: (name: string): string => `results.${name}`,
  allResults: 'results.>',
  /** One shard's queue, by the resource id (ids have no dots, unlike names). */
  shardQueue: (resourceId: string, index: number): string => `shards.${resourceId}.${index}`,
  /** Every shard queue of one resource. */
  shardQueues: (resourceId: string): string => `shards.${resourceId}.>`,
  allShardQueues: 'shards.>',
  /** One key of a resource's task store, in TASK_STATE_BUCKET; resource ids have no dots, so the id is one token. */
  taskStateKey: (resourceId: string, key: string): string => `${resourceId}.${key}`,
} as const;

/**
 * A client picks its own reply subject and the server does not check it.
 * Masters may publish on worker.*.assign and events.>, so a request whose
 * reply subject is anything but an inbox could steer our answer onto them:
 * such a request gets no answer at all, from anything of ours: respond() in
 * platform/nats/bus.ts, probes and the $SRV verbs all check it. An inbox is
 * nats.js's default `_INBOX.…`, or a user's own `_INBOX_<user>.…`
 * (connectBus gives each logged-in user one, and nats.conf lets only that
 * user read it).
 */
export function isReplySubject(reply: string): boolean {
  return reply.startsWith(INBOX_PREFIX) || USER_INBOX_RE.test(reply);
}
export const INBOX_PREFIX = '_INBOX.';
const USER_INBOX_RE = /^_INBOX_[A-Za-z0-9_-]{1,64}\.[^.]/;
