// The fuzzer's runner and judge: sends one case to a live cluster, judges
// what comes back against the target table and the wire contract, probes that
// the cluster still answers, and watches every process (still running, no
// unhandled rejection or uncaught exception, no fatal log line, no lost NATS
// connection). After the run, finish() restores what the fuzzer changed on
// purpose (cordons), waits for the cluster to converge and checks the chaos
// checker's invariants and the fuzzer's own record of what exists.
//
// Judging a gaffer reply:
//   - it arrives within the timeout, in the request's encoding (msgpack when
//     Content-Type starts with application/msgpack, else JSON);
//   - it is {ok:true,…} or {ok:false,error:{code,message}} with a code from
//     src/protocol/errors.ts, and never INTERNAL (a bug) nor, with no fault
//     injected, NO_LEADER, TIMEOUT or UNAVAILABLE;
//   - a certainly invalid request gets BAD_REQUEST, a valid one anything else;
//   - a valid request's answer agrees with what the fuzzer has seen exist
//     (its shadow: name -> id, absent, or unknown after a write it could not
//     see answered).

import fc from 'fast-check';
import { decode as mpDecode } from '@msgpack/msgpack';
import { connect, ErrorCode as NatsErrorCode, type Msg, type NatsConnection } from 'nats';
import type { LocalCluster } from '#devcluster/cluster.js';
import { GafferClient } from '#client/client.js';
import { EtcdStore } from '#platform/etcd/store.js';
import { keys, parseKey } from '#protocol/keys.js';
import { decodeAssignment } from '#protocol/stored.js';
import { ErrorCode, isErrorCode } from '#protocol/errors.js';
import { ClientSubject, Header, WorkerSubject } from '#protocol/subjects.js';
import { ID_RE, type StatusResult } from '#protocol/messages.js';
import { sleep } from '#platform/clock.js';
import { linesSince, logPath } from '#harness/logs.js';
import { convergence, snapshot, type Finding } from '#harness/snapshot.js';
import { MAX_REQUEST, REQUEST_ID_RE, fuzzCase, materialize, type FuzzCase, type Materialized } from './arbitraries.js';
import { REQUEST_SUBJECTS, type Live, type TargetId } from './targets.js';

export interface JudgeOptions {
  /** How long a request that must be answered may take. */
  requestTimeoutMs?: number;
  /** Log the case being sent (for a hang). */
  trace?: (line: string) => void;
}

export interface Failure {
  caseNo: number;
  target: TargetId | 'final';
  subject?: string;
  kind: 'crash' | 'log' | 'hang' | 'untyped' | 'wrong-answer' | 'probe' | 'invariant';
  detail: string;
  /** The case as sent (bodies shortened). */
  sent?: unknown;
}

export interface CaseRecord {
  caseNo: number;
  target: TargetId;
  subject: string;
  mode: string;
  outcome: string;
  ms: number;
}

type Known = { k: 'present'; id: string } | { k: 'absent' } | { k: 'unknown' };

/**
 * Typed answers the contract gives while the cluster is briefly unable to
 * commit (a leader change, an etcd stall on a loaded machine). No fault is
 * injected, so they are counted and shown, but a cluster that keeps giving
 * them fails the probes.
 */
const TRANSIENT: ReadonlySet<string> = new Set([ErrorCode.NO_LEADER, ErrorCode.TIMEOUT, ErrorCode.UNAVAILABLE]);
/** Log lines that mean a process crashed, nearly did, or lost its footing. */
const LOG_PATTERNS: Array<[RegExp, string]> = [
  [/unhandled/i, 'unhandled rejection or error'],
  [/uncaught/i, 'uncaught exception'],
  [/"level":60/, 'fatal log line'],
  [/"level":50/, 'error log line'],
  [/"msg":"nats connection".*"event":"disconnect"|"event":"disconnect".*"msg":"nats connection"/, 'lost its NATS connection'],
];
/** Node's own warnings (not ours) written to stderr. */
const BENIGN_STDERR = /^\(node:\d+\) (ExperimentalWarning|Warning: .*MaxListeners)/;

function preview(data: Uint8Array): string {
  const head = Buffer.from(data.subarray(0, 160));
  const text = head.toString('utf8');
  const printable = /^[\x20-\x7e\u00a0-\uffff\t]*$/.test(text);
  return `${data.byteLength} bytes: ${printable ? JSON.stringify(text) : `hex ${head.subarray(0, 48).toString('hex')}`}${data.byteLength > 160 ? '…' : ''}`;
}

const WRITES: ReadonlySet<string> = new Set([ClientSubject.add, ClientSubject.delete, ClientSubject.restart]);

/** touchedName is the resource a request names (read as the product reads it), if any. */
function touchedName(m: Materialized): string | undefined {
  if (!(REQUEST_SUBJECTS as readonly string[]).includes(m.effective) || m.data.byteLength > MAX_REQUEST) return undefined;
  let body: unknown;
  try {
    body = effectiveType(m) === 'msgpack' ? mpDecode(m.data) : JSON.parse(Buffer.from(m.data).toString('utf8'));
  } catch {
    return undefined;
  }
  const name = (body as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : undefined;
}

/** effectiveType is how the product must read a body: msgpack when Content-Type says so (README), else JSON. */
function effectiveType(m: Materialized): 'json' | 'msgpack' {
  const ct = m.headers?.get(Header.contentType) ?? '';
  return ct.trim().toLowerCase().startsWith('application/msgpack') ? 'msgpack' : 'json';
}

/** Tails the log files of the cluster's processes, from where it last read. */
class LogWatch {
  private readonly offsets = new Map<string, number>();
  constructor(private readonly dir: string) {}

  /** scan returns the lines written since the last scan that match an alarming pattern. */
  scan(ids: Iterable<string>): Array<{ id: string; why: string; line: string }> {
    const out: Array<{ id: string; why: string; line: string }> = [];
    for (const id of ids) {
      // Only whole lines; a partial last line is read next time.
      const { lines, next } = linesSince(logPath(this.dir, id), this.offsets.get(id) ?? 0);
      this.offsets.set(id, next);
      for (const line of lines) {
        if (line.trim() === '') continue;
        if (!line.startsWith('{')) {
          if (!BENIGN_STDERR.test(line)) out.push({ id, why: 'output that is not a log line (stderr)', line: line.slice(0, 500) });
          continue;
        }
        for (const [re, why] of LOG_PATTERNS) {
          if (re.test(line)) {
            out.push({ id, why, line: line.slice(0, 1000) });
            break;
          }
        }
      }
    }
    return out;
  }
}

export class Fuzzer {
  readonly live: Live;
  readonly shadow = new Map<string, Known>();
  readonly failures: Failure[] = [];
  readonly records: CaseRecord[] = [];
  readonly notes = new Map<string, { count: number; example: unknown }>();
  /** During a burst: names whose order in the batch is unknown (not judged against the shadow), and names written. */
  private contended = new Set<string>();
  private racing = new Set<string>();
  crashed = false;
  /** Cases run; with their bursts, `records` holds one entry per message sent. */
  cases = 0;
  /** Why the run cannot go on (a process exited, or the cluster stopped answering probes). */
  broken: string | undefined;
  private probeFailures = 0;
  private liveAt = 0;
  private readonly logs: LogWatch;
  private readonly timeoutMs: number;
  private readonly runTag = Math.random().toString(36).slice(2, 8);

  private constructor(
    readonly cluster: LocalCluster,
    private readonly nc: NatsConnection,
    readonly client: GafferClient,
    private readonly store: EtcdStore,
    private readonly opts: JudgeOptions,
  ) {
    this.live = {
      masters: [...cluster.masters.keys()].sort(),
      leader: undefined,
      workers: [...cluster.workers.keys()].sort(),
      epochs: new Map(),
      assigned: [],
      known: [],
      srvIds: [],
    };
    this.logs = new LogWatch(cluster.dir);
    this.timeoutMs = opts.requestTimeoutMs ?? 8000;
  }

  /** start connects to a running, ready cluster. */
  static async start(cluster: LocalCluster, opts: JudgeOptions = {}): Promise<Fuzzer> {
    const nc = await connect({ servers: cluster.natsUrl, name: 'gaffer-fuzz', maxReconnectAttempts: -1 });
    const client = await GafferClient.connect(cluster.natsUrl, { timeoutMs: 5000 });
    const store = await EtcdStore.connect(cluster.etcdEndpoints.split(','), { timeoutMs: 3000 });
    const f = new Fuzzer(cluster, nc, client, store, opts);
    const st = await client.status();
    f.live.leader = st.leader;
    await f.refresh();
    // Read the logs written so far, so only what the fuzz run causes counts.
    for (const x of f.logs.scan(f.processIds())) f.fail(0, 'final', 'log', `${x.id} before the run: ${x.why}: ${x.line}`);
    return f;
  }

  private processIds(): string[] {
    return [...this.cluster.masters.keys(), ...this.cluster.workers.keys()];
  }

  private fail(caseNo: number, target: Failure['target'], kind: Failure['kind'], detail: string, m?: Materialized, c?: FuzzCase): void {
    this.failures.push({
      caseNo,
      target,
      kind,
      detail,
      ...(m ? { subject: m.resolved.subject, sent: this.describe(m, c) } : {}),
    });
    this.opts.trace?.(`FAIL #${caseNo} ${target} ${kind}: ${detail.slice(0, 400)}`);
  }

  describe(m: Materialized, c?: FuzzCase): unknown {
    return {
      subject: m.resolved.subject,
      ...(m.effective !== m.resolved.subject ? { forgedSubject: m.effective } : {}),
      mode: c?.mode,
      headers: m.headerList,
      body: preview(m.data),
      note: m.note,
      intent: m.intent,
    };
  }

  /** note records a deviation that is known and reported but not treated as a failure. */
  private note(what: string, m: Materialized): void {
    const n = this.notes.get(what);
    if (n) n.count++;
    else this.notes.set(what, { count: 1, example: this.describe(m) });
  }

  /** refresh reads worker incarnations and assignments from etcd. */
  async refresh(): Promise<void> {
    const [workers, assigns] = await Promise.all([this.store.range(keys.workersPrefix), this.store.range(keys.assignmentsPrefix)]);
    this.live.epochs = new Map(workers.kvs.flatMap((kv) => {
      const id = parseKey.worker(kv.key);
      return id ? [[id, kv.lease] as [string, string]] : [];
    }));
    this.live.assigned = assigns.kvs.flatMap((kv) => {
      const k = parseKey.assignment(kv.key);
      if (!k) return [];
      try {
        const a = decodeAssignment(kv.value, kv.modRevision);
        return [{ name: a.resource.name, id: a.resource.id, worker: k.workerId, attempt: a.resource.attempt, epoch: a.epoch }];
      } catch {
        return [];
      }
    });
    this.liveAt = Date.now();
  }

  private learn(name: string, k: Known): void {
    this.opts.trace?.(`  shadow ${name}: ${k.k}${k.k === 'present' ? ` ${k.id}` : ''}`);
    this.shadow.set(name, k);
    const i = this.live.known.findIndex((x) => x.name === name);
    if (k.k === 'present') {
      if (i >= 0) this.live.known[i] = { name, id: k.id };
      else this.live.known.push({ name, id: k.id });
    } else if (i >= 0 && k.k === 'absent') this.live.known.splice(i, 1);
  }

  /**
   * runCase sends one case (and its burst, all at once), judges each answer
   * and probes the cluster; false once the run cannot go on.
   */
  async runCase(c: FuzzCase, caseNo: number): Promise<boolean> {
    this.cases++;
    const all = [c, ...(c.burst ?? [])];
    if (all.some((x) => x.target === WorkerSubject.report || x.target === 'worker.assign') || Date.now() - this.liveAt > 2000) {
      await this.refresh().catch(() => undefined);
    }
    const ms = all.map((x, i) => materialize(x, this.live, caseNo, this.runTag, i));
    // Names more than one member touches, one of them writing: their order in the batch is unknown.
    const seen = new Map<string, number>();
    const written = new Set<string>();
    for (const m of ms) {
      const n = touchedName(m);
      if (n === undefined) continue;
      seen.set(n, (seen.get(n) ?? 0) + 1);
      if (WRITES.has(m.effective)) written.add(n);
    }
    this.contended = new Set([...seen].filter(([n, k]) => k > 1 && written.has(n)).map(([n]) => n));
    this.racing = all.length > 1 ? written : new Set();
    const t0 = Date.now();
    await Promise.all(
      all.map(async (x, i) => {
        const m = ms[i]!;
        this.opts.trace?.(`#${caseNo}${i ? `.${i}` : ''} ${x.mode} ${m.resolved.subject}${m.effective !== m.resolved.subject ? ` as ${m.effective}` : ''} ${m.note} (${m.data.byteLength} B)`);
        const t = Date.now();
        let outcome: string;
        try {
          outcome = await this.send(x, m, caseNo, i);
        } catch (err) {
          if ((err as { code?: string }).code === NatsErrorCode.MaxPayloadExceeded) outcome = 'too-large-to-send';
          else {
            outcome = 'fuzzer-error';
            this.fail(caseNo, x.target, 'wrong-answer', `the fuzzer could not send it: ${(err as Error).message}`, m, x);
          }
        }
        this.records.push({ caseNo, target: x.target, subject: m.resolved.subject, mode: x.mode, outcome, ms: Date.now() - t });
        this.opts.trace?.(`#${caseNo}${i ? `.${i}` : ''} -> ${outcome} in ${Date.now() - t} ms`);
      }),
    );
    for (const n of this.contended) this.learn(n, { k: 'unknown' });
    this.contended = new Set();
    this.racing = new Set();
    const t1 = Date.now();
    const answered = await this.probe(caseNo, c, ms[0]!);
    this.watch(caseNo, c, ms[0]!);
    this.opts.trace?.(`#${caseNo} done in ${t1 - t0} ms, probes ${Date.now() - t1} ms`);
    // A cluster that stopped answering makes every later case a slow timeout: stop there.
    this.probeFailures = answered ? 0 : this.probeFailures + 1;
    if (this.crashed) this.broken ??= `a process exited at case ${caseNo}`;
    if (this.probeFailures >= 3) this.broken ??= `the cluster stopped answering probes (cases ${caseNo - 2} to ${caseNo})`;
    return this.broken === undefined;
  }

  /** send delivers the case as its mode says and judges any answer; returns the outcome's name. */
  private async send(c: FuzzCase, m: Materialized, caseNo: number, member: number): Promise<string> {
    const { subject, answer } = m.resolved;
    const opts = m.headers ? { headers: m.headers } : {};
    const noReplyByDesign = answer === 'none';
    if (c.mode === 'publish' || (c.mode === 'request' && noReplyByDesign)) {
      // Nobody answers here by design (or the case does not ask): publish, then see the cluster still answers.
      this.nc.publish(subject, m.data, opts);
      await this.nc.flush();
      this.notePublishedWrite(m);
      return 'published';
    }
    if (c.mode === 'foreign') return this.sendForeign(c, m, caseNo, member);
    let reply: Msg;
    try {
      reply = await this.nc.request(subject, m.data, { timeout: this.timeoutMs, ...opts });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === NatsErrorCode.NoResponders) {
        if (answer === 'no-responders') return 'no-responders';
        this.fail(caseNo, c.target, 'wrong-answer', `no responders on ${subject}: nobody serves it`, m, c);
        return 'no-responders';
      }
      if (code === NatsErrorCode.Timeout) {
        this.notePublishedWrite(m);
        this.fail(caseNo, c.target, 'hang', `no reply within ${this.timeoutMs} ms`, m, c);
        return 'no-reply';
      }
      if (code === NatsErrorCode.MaxPayloadExceeded) return 'too-large-to-send';
      throw err;
    }
    switch (answer) {
      case 'gaffer':
        return this.judgeGaffer(c, m, reply, caseNo);
      case 'status':
        return this.judgeStatus(c, m, reply, caseNo);
      case 'srv':
        return this.judgeSrv(c, m, reply, caseNo);
      case 'no-responders':
        // The subject came to be served meanwhile (a leader change): a gaffer answer must still be typed.
        if (c.target === 'master.leader') return this.judgeGaffer(c, m, reply, caseNo);
        this.fail(caseNo, c.target, 'wrong-answer', `an answer on ${subject}, which nobody should serve: ${preview(reply.data)}`, m, c);
        return 'unexpected-reply';
      case 'none':
        return 'unexpected-reply';
    }
  }

  /** sendForeign names a reply subject that is not an inbox: nobody may answer there. */
  private async sendForeign(c: FuzzCase, m: Materialized, caseNo: number, member: number): Promise<string> {
    const foreign = `fuzz.reply.${this.runTag}.${caseNo}.${member}`;
    const sub = this.nc.subscribe(foreign);
    let got = 0;
    void (async () => {
      for await (const _ of sub) got++;
    })();
    this.nc.publish(m.resolved.subject, m.data, { reply: foreign, ...(m.headers ? { headers: m.headers } : {}) });
    await this.nc.flush();
    // Long enough for a master to answer if it were going to (they answer in milliseconds).
    await sleep(m.resolved.answer === 'gaffer' ? 150 : 30);
    sub.unsubscribe();
    // Nobody of ours answers there: not masters, not the leader's probe responder, not a worker's status,
    // not the $SRV verbs. (A subject nobody serves can still get the server's own 503 there.)
    if (got > 0 && (m.resolved.answer === 'gaffer' || m.resolved.answer === 'status' || m.resolved.answer === 'srv')) {
      this.fail(caseNo, c.target, 'wrong-answer', `answered on a reply subject that is not an inbox (${got} messages)`, m, c);
    }
    return got > 0 ? `answered-foreign` : 'foreign-dropped';
  }

  /** A write published without a reply may or may not have run: its name is unknown from now on. */
  private notePublishedWrite(m: Materialized): void {
    if (!WRITES.has(m.effective)) return;
    const name = touchedName(m);
    if (name !== undefined) this.learn(name, { k: 'unknown' });
  }

  private judgeGaffer(c: FuzzCase, m: Materialized, reply: Msg, caseNo: number): string {
    const bad = (detail: string, kind: Failure['kind'] = 'wrong-answer'): void => this.fail(caseNo, c.target, kind, detail, m, c);
    const viaLeader = c.target === 'master.leader';
    if (viaLeader && m.headers?.get(Header.ping) === '1') {
      if (reply.data.byteLength !== 0) bad(`a probe (Gaffer-Ping: 1) got a body: ${preview(reply.data)}`);
      return 'ping';
    }
    const want = effectiveType(m);
    const replyCt = reply.headers?.get(Header.contentType) ?? '';
    const replyType = replyCt.includes('msgpack') ? 'msgpack' : 'json';
    if (replyType !== want) bad(`answered in ${replyType} (Content-Type ${JSON.stringify(replyCt)}) to a ${want} request`);
    let v: unknown;
    try {
      v = replyType === 'msgpack' ? mpDecode(reply.data) : JSON.parse(Buffer.from(reply.data).toString('utf8'));
    } catch (err) {
      bad(`reply is not valid ${replyType}: ${(err as Error).message}; ${preview(reply.data)}`, 'untyped');
      return 'malformed-reply';
    }
    const r = v as { ok?: unknown; error?: { code?: unknown; message?: unknown } } | null;
    if (!r || typeof r !== 'object' || (r.ok !== true && r.ok !== false)) {
      bad(`reply is not {ok:…}: ${preview(reply.data)}`, 'untyped');
      return 'malformed-reply';
    }
    let code: string | undefined;
    if (r.ok === false) {
      const e = r.error;
      if (!e || !isErrorCode(e.code) || typeof e.message !== 'string') {
        bad(`error reply without a typed error: ${preview(reply.data)}`, 'untyped');
        return 'untyped-error';
      }
      code = e.code;
      if (code === ErrorCode.INTERNAL) bad(`${code}: ${e.message}`, 'untyped');
      if (TRANSIENT.has(code)) this.note(`transient ${code} answers (no fault injected)`, m);
    }
    // What the request must get, from what was sent.
    const id = m.headers?.get(Header.requestId) ?? '';
    const origin = m.headers?.get(Header.origin) ?? '';
    const badId = (id !== '' && !REQUEST_ID_RE.test(id)) || (origin !== '' && !ID_RE.test(origin));
    const known = (REQUEST_SUBJECTS as readonly string[]).includes(m.effective);
    const big = m.data.byteLength > MAX_REQUEST;
    const mismatch = m.data.byteLength > 0 && m.bodyEnc !== 'none' && m.bodyEnc !== want && m.intent !== 'any';
    const mustRefuse = badId || !known || big || m.intent === 'invalid' || mismatch;
    const mustAccept = !mustRefuse && m.intent === 'valid';
    const why = badId ? 'an invalid Gaffer-Request-Id or Gaffer-Origin' : !known ? `subject ${JSON.stringify(m.effective)}` : big ? `${m.data.byteLength} bytes` : mismatch ? `a ${m.bodyEnc} body read as ${want}` : m.note;
    if (mustRefuse && code !== ErrorCode.BAD_REQUEST) bad(`expected BAD_REQUEST (${why}), got ${code ?? 'ok'}: ${preview(reply.data)}`);
    if (mustAccept && code === ErrorCode.BAD_REQUEST) bad(`a valid request was refused: ${(r.error as { message?: string }).message}`);
    if (code !== undefined && TRANSIENT.has(code)) {
      // The outcome of a write is unknown (TIMEOUT), or may be (UNAVAILABLE from a commit that failed).
      this.notePublishedWrite(m);
      return code;
    }
    if (known && !mustRefuse) this.checkContent(c, m, r as Record<string, unknown>, code, bad);
    else if (r.ok === true) this.learnFrom(m, r as Record<string, unknown>);
    return code ?? 'ok';
  }

  /** learnFrom keeps the shadow true to a write the product took although the fuzzer expected a refusal (reported already). */
  private learnFrom(m: Materialized, r: Record<string, unknown>): void {
    const res = r.resource as { name?: unknown; id?: unknown } | undefined;
    if (!WRITES.has(m.effective) || typeof res?.name !== 'string' || typeof res.id !== 'string') return;
    if (m.reusedId || this.contended.has(res.name)) this.learn(res.name, { k: 'unknown' });
    else if (m.effective === ClientSubject.delete) this.learn(res.name, { k: 'absent' });
    else this.learn(res.name, { k: 'present', id: res.id });
  }

  /**
   * checkContent: the answer to a request the product accepted agrees with
   * its subject's contract and with what the fuzzer has seen exist.
   */
  private checkContent(c: FuzzCase, m: Materialized, r: Record<string, unknown>, code: string | undefined, bad: (d: string) => void): void {
    const subject = m.effective;
    const req = m.request ?? {};
    // A body the fuzzer did not build as valid may still be one: the answer names what it touched.
    const replied = (r.resource as { name?: unknown } | undefined)?.name;
    const name = typeof req.name === 'string' ? req.name : code === undefined && typeof replied === 'string' ? replied : undefined;
    const write = subject === ClientSubject.add || subject === ClientSubject.delete || subject === ClientSubject.restart;
    if (write && m.reusedId) {
      // The first outcome of an earlier write with this id may answer: it says nothing of this name.
      if (name) this.learn(name, { k: 'unknown' });
      return;
    }
    const res = r.resource as { name?: unknown; id?: unknown } | undefined;
    const resOk = (): boolean => !!res && typeof res.name === 'string' && typeof res.id === 'string';
    const before = name && !this.contended.has(name) ? (this.shadow.get(name) ?? { k: 'unknown' }) : ({ k: 'unknown' } as Known);
    const checkShadow = m.intent === 'valid' && name !== undefined && !this.contended.has(name);
    switch (subject) {
      case ClientSubject.add: {
        if (req.dryRun === true || r.dryRun === true) {
          if (code === undefined && (r.dryRun !== true || !Array.isArray(r.candidates))) bad('a dry run answered without dryRun/candidates');
          return;
        }
        if (code !== undefined) {
          if (m.intent === 'valid') bad(`a valid add failed with ${code}`);
          return;
        }
        if (!resOk() || typeof r.created !== 'boolean') return bad('an add answered without created and resource');
        if (name && res!.name !== name) bad(`add of ${name} answered with resource ${String(res!.name)}`);
        if (checkShadow && before.k === 'present' && (r.created !== false || res!.id !== before.id)) {
          bad(`add of existing ${name} (id ${before.id}) answered created: ${String(r.created)}, id ${String(res!.id)}`);
        }
        if (checkShadow && before.k === 'absent' && r.created !== true) bad(`add of absent ${name} answered created: false (id ${String(res!.id)})`);
        this.learn(res!.name as string, { k: 'present', id: res!.id as string });
        return;
      }
      case ClientSubject.delete:
      case ClientSubject.get:
      case ClientSubject.restart:
      case ClientSubject.explain: {
        if (!name) return;
        if (code === ErrorCode.NOT_FOUND) {
          if (checkShadow && before.k === 'present') bad(`${subject} of ${name} said NOT_FOUND, but it exists (id ${before.id})`);
          if (subject !== ClientSubject.restart && subject !== ClientSubject.explain) this.learn(name, { k: 'absent' });
          return;
        }
        if (code === ErrorCode.CONFLICT && subject === ClientSubject.restart) {
          if (checkShadow && before.k === 'absent') bad(`restart of absent ${name} said CONFLICT, not NOT_FOUND`);
          return;
        }
        if (code !== undefined) {
          if (m.intent === 'valid') bad(`${subject} of ${name} failed with ${code}`);
          return;
        }
        if (checkShadow && before.k === 'absent') bad(`${subject} of ${name} succeeded, but it was deleted`);
        if (subject === ClientSubject.explain) {
          if (r.name !== name || typeof r.reason !== 'string' || !Array.isArray(r.candidates)) bad(`explain of ${name} answered without name/reason/candidates`);
          return;
        }
        if (!resOk() || res!.name !== name) return bad(`${subject} of ${name} answered with resource ${JSON.stringify(res)?.slice(0, 200)}`);
        if (checkShadow && before.k === 'present' && res!.id !== before.id) bad(`${subject} of ${name} answered id ${String(res!.id)}, but it is ${before.id}`);
        this.learn(name, subject === ClientSubject.delete ? { k: 'absent' } : { k: 'present', id: res!.id as string });
        return;
      }
      case ClientSubject.list: {
        if (code !== undefined) {
          if (m.intent === 'valid') bad(`a valid list failed with ${code}`);
          return;
        }
        const list = r.resources;
        if (!Array.isArray(list)) return bad('a list answered without resources');
        const names = list.map((x: { name?: unknown }) => x.name);
        if (!names.every((n) => typeof n === 'string')) return bad('a listed resource has no name');
        for (let i = 1; i < names.length; i++) if (!((names[i - 1] as string) < (names[i] as string))) return bad(`list is not sorted by name at ${String(names[i])}`);
        const limit = typeof req.limit === 'number' ? req.limit : 5000;
        if (list.length > limit) bad(`list returned ${list.length} resources for limit ${limit}`);
        const after = typeof req.after === 'string' ? req.after : undefined;
        if (after !== undefined && names.some((n) => (n as string) <= after)) bad(`list after ${after} returned ${String(names[0])}`);
        if (m.intent !== 'valid') return;
        const next = typeof r.next === 'string' ? r.next : undefined;
        const last = names[names.length - 1] as string | undefined;
        const inRange = (n: string): boolean => (after === undefined || n > after) && (next === undefined || (last !== undefined && n <= last));
        const listed = new Map(list.map((x: { name: string; id: string }) => [x.name, x.id]));
        for (const [n, k] of this.shadow) {
          if (!inRange(n) || this.racing.has(n)) continue;
          if (k.k === 'present' && listed.get(n) !== k.id) bad(`list is missing ${n} (id ${k.id})${listed.has(n) ? `: it lists id ${listed.get(n)}` : ''}`);
          if (k.k === 'absent' && listed.has(n)) bad(`list shows deleted ${n} (id ${listed.get(n)})`);
        }
        return;
      }
      case ClientSubject.status: {
        if (code !== undefined) {
          if (m.intent === 'valid') bad(`cluster.status failed with ${code}`);
          return;
        }
        this.checkStatus(r as unknown as StatusResult, bad);
        return;
      }
      case ClientSubject.cordon:
      case ClientSubject.uncordon:
      case ClientSubject.drain: {
        const worker = req.worker;
        if (typeof worker !== 'string' || m.intent !== 'valid') return;
        const liveWorker = this.live.workers.includes(worker);
        if (!liveWorker && code !== ErrorCode.NOT_FOUND) return bad(`${subject} of unknown worker ${worker} answered ${code ?? 'ok'}`);
        if (liveWorker && code !== undefined) return bad(`${subject} of live worker ${worker} failed with ${code}`);
        if (code !== undefined) return;
        if (r.worker !== worker) bad(`${subject} of ${worker} answered for ${String(r.worker)}`);
        if (subject === ClientSubject.drain && (typeof r.moved !== 'number' || typeof r.remaining !== 'number')) bad('drain answered without moved/remaining');
        if (subject !== ClientSubject.drain && r.cordoned !== (subject === ClientSubject.cordon)) bad(`${subject} answered cordoned: ${String(r.cordoned)}`);
        return;
      }
      case WorkerSubject.report: {
        if (code !== undefined) {
          if (m.intent === 'valid') bad(`a valid report batch failed with ${code}`);
          return;
        }
        const results = r.results;
        const reports = (req as { reports?: unknown[] }).reports;
        if (!Array.isArray(results)) return bad('a report batch answered without results');
        if (Array.isArray(reports) && results.length !== reports.length) return bad(`${reports.length} reports got ${results.length} results`);
        results.forEach((x: { ok?: unknown; error?: { code?: unknown } }, i: number) => {
          const refused = x?.ok === false && x.error?.code === ErrorCode.NOT_OWNER;
          if (!(x?.ok === true || refused)) bad(`report ${i} got ${JSON.stringify(x).slice(0, 200)}`);
          if (m.items?.[i] === 'not-owner' && !refused) bad(`report ${i} (${JSON.stringify((reports?.[i] as object) ?? {}).slice(0, 200)}) is from no owner but was taken`);
        });
        return;
      }
    }
    void c;
  }

  private checkStatus(s: StatusResult, bad: (d: string) => void): void {
    if (typeof s.leader !== 'string' || !Array.isArray(s.masters) || !Array.isArray(s.workers)) return bad('cluster.status without leader/masters/workers');
    if (!s.masters.includes(s.leader)) bad(`leader ${s.leader} is not among masters ${s.masters.join(',')}`);
    const masters = [...s.masters].sort().join(',');
    if (masters !== this.live.masters.join(',')) bad(`cluster.status shows masters [${masters}], want [${this.live.masters.join(',')}]`);
    const workers = s.workers.map((x) => x.id).sort().join(',');
    if (workers !== this.live.workers.join(',')) bad(`cluster.status shows workers [${workers}], want [${this.live.workers.join(',')}]`);
    this.live.leader = s.leader;
  }

  private judgeStatus(c: FuzzCase, m: Materialized, reply: Msg, caseNo: number): string {
    const bad = (d: string): void => this.fail(caseNo, c.target, 'wrong-answer', d, m, c);
    if (m.headers?.get(Header.ping) === '1') {
      if (reply.data.byteLength !== 0) bad(`a probe got a body: ${preview(reply.data)}`);
      return 'ping';
    }
    let v: { ok?: unknown; id?: unknown; running?: unknown; tasks?: unknown };
    try {
      v = JSON.parse(Buffer.from(reply.data).toString('utf8')) as typeof v;
    } catch {
      bad(`worker status is not JSON: ${preview(reply.data)}`);
      return 'malformed-reply';
    }
    if (v?.ok !== true || v.id !== m.resolved.worker || !Array.isArray(v.running) || !Array.isArray(v.tasks)) bad(`worker status is not {ok,id,running,tasks}: ${preview(reply.data)}`);
    return 'status';
  }

  private judgeSrv(c: FuzzCase, m: Materialized, reply: Msg, caseNo: number): string {
    const bad = (d: string): void => this.fail(caseNo, c.target, 'wrong-answer', d, m, c);
    let v: { name?: unknown; id?: unknown; type?: unknown };
    try {
      v = JSON.parse(Buffer.from(reply.data).toString('utf8')) as typeof v;
    } catch {
      bad(`discovery reply is not JSON: ${preview(reply.data)}`);
      return 'malformed-reply';
    }
    const verb = c.srv.verb.toLowerCase();
    if (v?.name !== 'gaffer' || typeof v.id !== 'string' || typeof v.type !== 'string' || !v.type.includes(`${verb}_response`)) {
      bad(`discovery reply does not name the gaffer service (${verb}): ${preview(reply.data)}`);
    } else if (!this.live.srvIds.includes(v.id)) this.live.srvIds.push(v.id);
    const parts = m.resolved.subject.split('.');
    if (parts.length === 4 && v?.id !== parts[3]) bad(`${m.resolved.subject} was answered by instance ${String(v?.id)}`);
    return 'srv';
  }

  /** probe: the masters still answer cluster.status, and every worker its status; false if any did not. */
  private async probe(caseNo: number, c: FuzzCase, m: Materialized): Promise<boolean> {
    let ok = true;
    const bad = (d: string): void => {
      ok = false;
      this.fail(caseNo, c.target, 'probe', d, m, c);
    };
    // A transient answer is tried again for a while; the cluster must answer ok well within it.
    for (let attempt = 1; ; attempt++) {
      let transient: string | undefined;
      try {
        const reply = await this.nc.request(ClientSubject.status, new TextEncoder().encode('{}'), { timeout: this.timeoutMs });
        const s = JSON.parse(Buffer.from(reply.data).toString('utf8')) as StatusResult & { ok: boolean; error?: { code: string; message: string } };
        if (s.ok === true) this.checkStatus(s, bad);
        else if (s.error && TRANSIENT.has(s.error.code)) transient = `${s.error.code}: ${s.error.message}`;
        else bad(`cluster.status after the case: ${s.error?.code}: ${s.error?.message}`);
      } catch (err) {
        bad(`cluster.status after the case: ${(err as Error).message}`);
      }
      if (transient === undefined) break;
      if (attempt >= 5) {
        bad(`cluster.status after the case, ${attempt} times: ${transient}`);
        break;
      }
      await sleep(500);
    }
    await Promise.all(
      this.live.workers.map(async (id) => {
        try {
          const reply = await this.nc.request(`worker.${id}.status`, new Uint8Array(0), { timeout: 3000 });
          const s = JSON.parse(Buffer.from(reply.data).toString('utf8')) as { ok?: boolean; id?: string };
          if (s.ok !== true || s.id !== id) bad(`worker.${id}.status after the case: ${preview(reply.data)}`);
        } catch (err) {
          bad(`worker.${id}.status after the case: ${(err as Error).message}`);
        }
      }),
    );
    return ok;
  }

  /** watch: every process still runs, and none logged anything alarming since the last case. */
  private watch(caseNo: number, c: FuzzCase, m: Materialized): void {
    for (const [id, ch] of [...this.cluster.masters, ...this.cluster.workers]) {
      if (!ch.running) {
        this.crashed = true;
        this.fail(caseNo, c.target, 'crash', `${id} exited`, m, c);
      }
    }
    for (const x of this.logs.scan(this.processIds())) {
      this.fail(caseNo, c.target, x.why.startsWith('output') || /unhandled|uncaught/.test(x.why) ? 'crash' : 'log', `${x.id}: ${x.why}: ${x.line}`, m, c);
    }
  }

  /**
   * finish restores the cordons the run made, waits for the cluster to
   * converge, and checks: every process runs and logged nothing alarming,
   * cluster.status shows every master and worker, list() works, the chaos
   * checker finds no mismatch (a pending resource counts only if some live
   * worker could take it), and everything the fuzzer saw exist (or deleted)
   * is listed (or not).
   */
  async finish(caseNo: number, timeoutMs = 30_000): Promise<void> {
    const bad = (kind: Failure['kind'], d: string): void => this.fail(caseNo, 'final', kind, d);
    for (const w of this.live.workers) await this.client.uncordon(w).catch((err) => bad('invariant', `uncordon ${w}: ${(err as Error).message}`));
    const deadline = Date.now() + timeoutMs;
    let why = 'not checked';
    let last: Finding[] = [];
    let converged = false;
    while (Date.now() < deadline) {
      try {
        const st = await this.client.status();
        const ms = [...st.masters].sort().join(',');
        const ws = st.workers.map((x) => x.id).sort().join(',');
        if (ms !== this.live.masters.join(',') || ws !== this.live.workers.join(',')) {
          why = `cluster.status shows masters [${ms}] and workers [${ws}]`;
          await sleep(200);
          continue;
        }
        const s = await snapshot(this.cluster, this.client);
        const skip = new Set<string>();
        for (const r of s.list) {
          if (r.worker !== null || r.state !== 'pending') continue;
          // Pending is right when no live worker can take it (a kind nobody runs, a rule nobody meets).
          const ex = await this.client.explain(r.name).catch(() => undefined);
          if (ex && ex.candidates.every((x) => 'excluded' in x)) skip.add(r.name);
        }
        const v = convergence(s, skip);
        if (v.ok) {
          last = [];
          converged = true;
          break;
        }
        why = v.why;
        if (v.mismatches) last = v.mismatches;
      } catch (err) {
        why = (err as Error).message;
      }
      await sleep(250);
    }
    if (!converged) bad('invariant', `the cluster did not converge within ${timeoutMs} ms: ${why}`);
    for (const f of last) bad('invariant', `${f.kind}: ${f.name}: ${f.detail}`);
    try {
      const list = await this.client.list();
      const listed = new Map(list.map((r) => [r.name, r.id]));
      for (const [n, k] of this.shadow) {
        if (k.k === 'present' && listed.get(n) !== k.id) bad('invariant', `${n} (id ${k.id}) was acknowledged and never deleted, but the list ${listed.has(n) ? `shows id ${listed.get(n)}` : 'lacks it'}`);
        if (k.k === 'absent' && listed.has(n)) bad('invariant', `${n} was deleted, but the list shows it (id ${listed.get(n)})`);
      }
    } catch (err) {
      bad('invariant', `list() failed: ${(err as Error).message}`);
    }
    for (const [id, ch] of [...this.cluster.masters, ...this.cluster.workers]) if (!ch.running) bad('crash', `${id} is not running`);
    for (const x of this.logs.scan(this.processIds())) bad(x.why.startsWith('output') || /unhandled|uncaught/.test(x.why) ? 'crash' : 'log', `${x.id}: ${x.why}: ${x.line}`);
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
    await this.nc.close().catch(() => undefined);
    this.store.close();
  }
}

// --- a whole fuzz session ------------------------------------------------------

export interface FuzzOptions extends JudgeOptions {
  seed: number;
  /** Cases to run (fewer if maxMs runs out first, or a process crashes). */
  runs: number;
  /** Stop sending new cases after this long. */
  maxMs: number;
  /** How long the cluster may take to converge afterwards. */
  convergeMs?: number;
  /** Called every `every` cases with the count so far. */
  progress?: (done: number) => void;
}

export interface Summary {
  seed: number;
  runsRequested: number;
  /** Cases run (fast-check runs). */
  cases: number;
  /** Messages sent: a case and its burst. */
  messages: number;
  durationMs: number;
  /** Why the run ended before `runsRequested` cases, if it did. */
  stoppedEarly?: string;
  byTarget: Record<string, number>;
  byOutcome: Record<string, number>;
  byTargetOutcome: Record<string, Record<string, number>>;
  crashes: number;
  failures: Failure[];
  /** Known deviations, reported but not failures: what, how often, one example. */
  notes: Array<{ what: string; count: number; example: unknown }>;
}

/**
 * fuzz runs a fixed-seed session against a ready cluster: `runs` cases
 * generated by fast-check from `seed`, each sent, judged and followed by
 * probes, then the final convergence and invariant checks. It never stops
 * the cluster; the caller does.
 */
export async function fuzz(cluster: LocalCluster, o: FuzzOptions): Promise<Summary> {
  const t0 = Date.now();
  const f = await Fuzzer.start(cluster, o);
  let n = 0;
  let stoppedEarly: string | undefined;
  try {
    const details = await fc.check(
      fc.asyncProperty(fuzzCase, async (c) => {
        n++;
        if (Date.now() - t0 > o.maxMs) return true;
        const alive = await f.runCase(c, n);
        if (n % 100 === 0) o.progress?.(n);
        return alive;
      }),
      { seed: o.seed, numRuns: o.runs, endOnFailure: true },
    );
    if (details.failed) {
      stoppedEarly = f.broken ?? `the fuzzer itself failed at case ${n}: ${String((details as { errorInstance?: unknown }).errorInstance)}`;
      if (!f.broken) f.failures.push({ caseNo: n, target: 'final', kind: 'invariant', detail: stoppedEarly });
    }
    if (Date.now() - t0 > o.maxMs && n < o.runs) stoppedEarly = `time limit of ${o.maxMs} ms`;
    // A broken cluster is reported as it was found; converging it would hide nothing more.
    if (!f.broken) await f.finish(n, o.convergeMs);
  } finally {
    await f.close();
  }
  const ran = f.cases;
  const byTarget: Record<string, number> = {};
  const byOutcome: Record<string, number> = {};
  const byTargetOutcome: Record<string, Record<string, number>> = {};
  for (const r of f.records) {
    byTarget[r.target] = (byTarget[r.target] ?? 0) + 1;
    byOutcome[r.outcome] = (byOutcome[r.outcome] ?? 0) + 1;
    const t = (byTargetOutcome[r.target] ??= {});
    t[r.outcome] = (t[r.outcome] ?? 0) + 1;
  }
  return {
    seed: o.seed,
    runsRequested: o.runs,
    cases: ran,
    messages: f.records.length,
    durationMs: Date.now() - t0,
    ...(stoppedEarly ? { stoppedEarly } : {}),
    byTarget,
    byOutcome,
    byTargetOutcome,
    crashes: f.failures.filter((x) => x.kind === 'crash').length,
    failures: f.failures,
    notes: [...f.notes].map(([what, n]) => ({ what, ...n })),
  };
}
