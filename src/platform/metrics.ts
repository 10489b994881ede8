// Prometheus metrics: one registry per process (Node's default metrics plus
// gaffer's own), a small typed API to record them, and an HTTP server for
// /metrics. Every metric name is documented in docs/metrics.md.
//
// Labels are bounded on purpose: `subject` is one of the client subjects (else
// "other"), `code` is OK or an error code (else "UNKNOWN"), `worker` is a
// worker id, removed again when the worker goes.

import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { isErrorCode } from '#protocol/errors.js';
import { isClientSubject } from '#protocol/subjects.js';
import type { HealthProbe } from './health.js';

/** The `code` label of a request that succeeded. */
export const OK_CODE = 'OK';

/** Latency buckets in seconds, from 0.5 ms to 10 s. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Batch-size buckets: powers of two up to a full etcd transaction's worth of requests and beyond. */
export const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

export interface MetricsOptions {
  /** Added to every series as labels, e.g. { role: 'master', id: 'm1' }. */
  labels?: Record<string, string>;
  /** Collect Node's default process metrics (default true). */
  defaultMetrics?: boolean;
}

type RequestLabels = 'subject' | 'code';

/** subjectLabel keeps the label set bounded: client subjects as they are, anything else "other". */
export function subjectLabel(subject: string): string {
  return isClientSubject(subject) ? subject : 'other';
}

/** codeLabel is OK, an ErrorCode, or UNKNOWN. */
export function codeLabel(code: string): string {
  return code === OK_CODE || isErrorCode(code) ? code : 'UNKNOWN';
}

/**
 * GafferMetrics owns one registry and every gaffer metric in it. Create one
 * per process with createMetrics and pass it to the actors that record.
 */
export class GafferMetrics {
  readonly registry: Registry;
  private readonly requests: Counter<RequestLabels>;
  private readonly requestSeconds: Histogram<RequestLabels>;
  private readonly forwardSeconds: Histogram;
  private readonly leader: Gauge;
  private readonly workerResources: Gauge<'worker'>;
  private readonly runningTasks: Gauge;
  private readonly commitSeconds: Histogram;
  private readonly batchSize: Histogram;
  private readonly unknownOutcomes: Counter;
  private readonly dedupe: Gauge;
  /** What the dedupe gauge was last set to, for the heap report. */
  dedupeEntries = 0;

  constructor(opts: MetricsOptions = {}) {
    const registers = [(this.registry = new Registry())];
    if (opts.labels) this.registry.setDefaultLabels(opts.labels);
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'gaffer_requests_total',
      help: 'Client requests answered, by subject and result code (OK or an error code).',
      labelNames: ['subject', 'code'],
      registers,
    });
    this.requestSeconds = new Histogram({
      name: 'gaffer_request_duration_seconds',
      help: 'Time from receiving a client request to answering it, by subject and result code.',
      labelNames: ['subject', 'code'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.forwardSeconds = new Histogram({
      name: 'gaffer_forward_duration_seconds',
      help: 'Time a follower spends handing a client request to the leader (the forwarding hop).',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.leader = new Gauge({
      name: 'gaffer_leader',
      help: '1 while this master is the leader, else 0.',
      registers,
    });
    this.workerResources = new Gauge({
      name: 'gaffer_worker_resources',
      help: 'Resources assigned to each live worker, as the leader sees it.',
      labelNames: ['worker'],
      registers,
    });
    this.runningTasks = new Gauge({
      name: 'gaffer_running_tasks',
      help: 'Tasks running on this worker.',
      registers,
    });
    this.commitSeconds = new Histogram({
      name: 'gaffer_etcd_commit_duration_seconds',
      help: "Latency of the leader's fenced etcd transactions (one group commit).",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.batchSize = new Histogram({
      name: 'gaffer_etcd_commit_batch_size',
      help: 'Client requests answered by one group commit.',
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.unknownOutcomes = new Counter({
      name: 'gaffer_etcd_commit_unknown_outcomes_total',
      help: "Leader transactions whose answer was lost (a call deadline) and that were sent again; the commit chain tells whether the first copy applied.",
      registers,
    });
    this.dedupe = new Gauge({
      name: 'gaffer_dedupe_entries',
      help: "Request outcomes in the leader's dedupe window (kept 60 s, so re-sent writes get their first outcome).",
      registers,
    });
    this.leader.set(0);
    this.runningTasks.set(0);
    this.dedupe.set(0);
  }

  /** observeRequest counts one answered client request and records its latency. */
  observeRequest(subject: string, code: string, seconds: number): void {
    const labels = { subject: subjectLabel(subject), code: codeLabel(code) };
    this.requests.inc(labels);
    this.requestSeconds.observe(labels, seconds);
  }

  /** observeForward records one forwarding hop's latency. */
  observeForward(seconds: number): void {
    this.forwardSeconds.observe(seconds);
  }

  setLeader(isLeader: boolean): void {
    this.leader.set(isLeader ? 1 : 0);
  }

  /** setWorkerLoads replaces every worker's series at once (e.g. from the leader's loads()); workers absent here are dropped. */
  setWorkerLoads(loads: ReadonlyArray<{ id: string; resources: number }>): void {
    this.workerResources.reset();
    for (const l of loads) this.workerResources.set({ worker: l.id }, l.resources);
  }

  setRunningTasks(n: number): void {
    this.runningTasks.set(n);
  }

  /** observeCommit records one fenced transaction's etcd latency. */
  observeCommit(seconds: number): void {
    this.commitSeconds.observe(seconds);
  }

  setDedupeEntries(n: number): void {
    this.dedupeEntries = n;
    this.dedupe.set(n);
  }

  /** observeUnknownOutcome counts one leader transaction sent again after its answer was lost. */
  observeUnknownOutcome(): void {
    this.unknownOutcomes.inc();
  }

  /** observeBatch records how many client requests one group commit answered. */
  observeBatch(requests: number): void {
    this.batchSize.observe(requests);
  }

}

/** createMetrics makes a process's metrics; e.g. createMetrics({ labels: { role: 'master', id: cfg.id } }). */
export function createMetrics(opts: MetricsOptions = {}): GafferMetrics {
  return new GafferMetrics(opts);
}

/** metricsHost: where --metrics-port listens; GAFFER_METRICS_HOST=0.0.0.0 exposes it (in containers). */
export function metricsHost(): { host?: string } {
  const host = process.env.GAFFER_METRICS_HOST;
  return host ? { host } : {};
}

export interface MetricsServer {
  /** The port it listens on (useful with port 0). */
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/**
 * startMetricsServer serves the registry at GET /metrics on host:port
 * (127.0.0.1 unless told otherwise; port 0 picks a free one), and with
 * `health` the liveness report at GET /healthz (200, or 503 when a check
 * fails; JSON either way). It resolves once listening and rejects if it
 * cannot listen. close() stops it.
 */
export function startMetricsServer(port: number, registry: Registry, opts: { host?: string; health?: HealthProbe } = {}): Promise<MetricsServer> {
  const host = opts.host ?? '127.0.0.1';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' && !(path === '/healthz' && opts.health)) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`not found; try /metrics${opts.health ? ' or /healthz' : ''}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      const report = opts.health!();
      res.writeHead(report.ok ? 200 : 503, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : `${JSON.stringify(report)}\n`);
      return;
    }
    registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'Content-Type': registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`${(err as Error).message}\n`);
      },
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const bound = (server.address() as { port: number }).port;
      const shown = host.includes(':') ? `[${host}]` : host;
      resolve({
        port: bound,
        url: `http://${shown}:${bound}/metrics`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
