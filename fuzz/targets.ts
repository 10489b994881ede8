// The fuzzer's target table: every subject it sends to, how the subject is
// built from a case and the live cluster, and what a message there must get.
//
//   gaffer   a typed gaffer reply ({ok:true,…} or {ok:false,error:{code,message}})
//            in the request's encoding; the client subjects, task.report, and
//            master.leader.<leader> (as the subject in Gaffer-Subject)
//   status   worker.<id>.status: {ok:true,id,running,tasks}, JSON
//   srv      $SRV.*: a NATS micro discovery reply naming the gaffer service
//   none     nobody answers by design (assign events, acks): published only
//
// A subject nobody serves (an unknown worker or master id, a follower's
// master.leader.<id>, $SRV.PING.<other>) must get "no responders" at once.

import { ClientSubject, WorkerSubject, subjects, type RequestSubject } from '#protocol/subjects.js';

export const TARGETS = [
  ClientSubject.add,
  ClientSubject.delete,
  ClientSubject.get,
  ClientSubject.list,
  ClientSubject.restart,
  ClientSubject.explain,
  ClientSubject.status,
  ClientSubject.cordon,
  ClientSubject.uncordon,
  ClientSubject.drain,
  ClientSubject.apply,
  WorkerSubject.report,
  '$SRV',
  'worker.assign',
  'worker.status',
  'master.leader',
  'master.ack',
] as const;
export type TargetId = (typeof TARGETS)[number];

/** Subjects masters take requests on (the client subjects and task.report). */
export const REQUEST_SUBJECTS: readonly RequestSubject[] = [...Object.values(ClientSubject), ...Object.values(WorkerSubject)];

export function isRequestTarget(t: TargetId): t is TargetId & RequestSubject {
  return (REQUEST_SUBJECTS as readonly string[]).includes(t);
}

/** Subject tokens that look like subjects or wildcards (never empty: an empty token is not a subject at all). */
export const ODD_TOKENS = ['*', '>', 'a.b', 'a.>', 'w1.x', 'wörker', 'W1', '-', '_', '0', '$SRV', 'x'.repeat(200)] as const;

/** Which worker a worker.<id>.* case names: a live one (by index), one that does not exist, or an odd token. */
export type WorkerRef = { k: 'live'; i: number } | { k: 'unknown' } | { k: 'odd'; token: string };
/** Which master a master.*.<id> case names. */
export type MasterRef = { k: 'leader' } | { k: 'follower'; i: number } | { k: 'unknown' } | { k: 'odd'; token: string };
export type SrvVerb = 'PING' | 'INFO' | 'STATS';
/** all: $SRV.PING; service: $SRV.PING.gaffer; instance: $SRV.PING.gaffer.<id>; the rest name nothing that exists. */
export type SrvScope = 'all' | 'service' | 'instance' | 'other-service' | 'bad-instance' | 'upper-case';
export interface SrvRef {
  verb: SrvVerb;
  scope: SrvScope;
  i: number;
}

/** What the fuzzer knows of the live cluster when it builds a case's subject and body. */
export interface Live {
  /** Every master id we started, and the leader as last seen. */
  masters: string[];
  leader: string | undefined;
  /** Every worker id we started. */
  workers: string[];
  /** Worker id -> its current incarnation (lease id), from etcd. */
  epochs: Map<string, string>;
  /** Current assignments, from etcd. */
  assigned: Array<{ name: string; id: string; worker: string; attempt: number; epoch: string }>;
  /** Resource names and ids the fuzzer has seen exist. */
  known: Array<{ name: string; id: string }>;
  /** NATS micro instance ids of the masters' service, as seen in discovery replies. */
  srvIds: string[];
}

/** The kind of answer a subject gives: see the top of this file. */
export type Answer = 'gaffer' | 'status' | 'srv' | 'none' | 'no-responders';

export interface Resolved {
  subject: string;
  answer: Answer;
  /** For worker targets: the live worker it names, if any (its status is probed after the case). */
  worker?: string;
}

const pick = <T>(xs: readonly T[], i: number): T | undefined => (xs.length === 0 ? undefined : xs[Math.abs(i) % xs.length]);

function workerId(ref: WorkerRef, live: Live): { id: string; live: boolean } {
  if (ref.k === 'live') {
    const id = pick(live.workers, ref.i);
    if (id !== undefined) return { id, live: true };
  }
  if (ref.k === 'odd') return { id: ref.token, live: false };
  return { id: 'w-nosuch', live: false };
}

function masterId(ref: MasterRef, live: Live): { id: string; leader: boolean } {
  switch (ref.k) {
    case 'leader':
      return live.leader ? { id: live.leader, leader: true } : { id: 'm-nosuch', leader: false };
    case 'follower': {
      const id = pick(live.masters.filter((m) => m !== live.leader), ref.i);
      return id ? { id, leader: false } : { id: 'm-nosuch', leader: false };
    }
    case 'unknown':
      return { id: 'm-nosuch', leader: false };
    case 'odd':
      return { id: ref.token, leader: false };
  }
}

/** wildcard: a subject with a `*` or `>` token reaches only wildcard subscribers, never the service's own subscriptions. */
const wildcard = (subject: string): boolean => subject.split('.').some((t) => t === '*' || t === '>');

/**
 * resolve builds the subject of a case and says what it must get. A live
 * master or worker answers; anything else on a gaffer subject gets no
 * responders (or, for subjects only published to, nothing at all).
 */
export function resolve(
  target: TargetId,
  refs: { worker: WorkerRef; master: MasterRef; srv: SrvRef },
  live: Live,
): Resolved {
  if (isRequestTarget(target)) return { subject: target, answer: 'gaffer' };
  switch (target) {
    case '$SRV': {
      const { verb, scope, i } = refs.srv;
      switch (scope) {
        case 'all':
          return { subject: `$SRV.${verb}`, answer: 'srv' };
        case 'service':
          return { subject: `$SRV.${verb}.gaffer`, answer: 'srv' };
        case 'instance': {
          const id = pick(live.srvIds, i);
          return id ? { subject: `$SRV.${verb}.gaffer.${id}`, answer: 'srv' } : { subject: `$SRV.${verb}.gaffer`, answer: 'srv' };
        }
        case 'other-service':
          return { subject: `$SRV.${verb}.gaffer-nosuch`, answer: 'no-responders' };
        case 'bad-instance':
          return { subject: `$SRV.${verb}.gaffer.NOSUCHINSTANCE`, answer: 'no-responders' };
        case 'upper-case':
          return { subject: `$SRV.${verb}.GAFFER`, answer: 'no-responders' };
      }
      break;
    }
    case 'worker.assign': {
      const w = workerId(refs.worker, live);
      return { subject: subjects.workerAssign(w.id), answer: 'none', ...(w.live ? { worker: w.id } : {}) };
    }
    case 'worker.status': {
      const w = workerId(refs.worker, live);
      const subject = subjects.workerStatus(w.id);
      return w.live ? { subject, answer: 'status', worker: w.id } : { subject, answer: wildcard(subject) ? 'none' : 'no-responders' };
    }
    case 'master.leader': {
      const m = masterId(refs.master, live);
      const subject = subjects.leader(m.id);
      return { subject, answer: m.leader ? 'gaffer' : wildcard(subject) ? 'none' : 'no-responders' };
    }
    case 'master.ack': {
      const m = masterId(refs.master, live);
      return { subject: subjects.masterAck(m.id), answer: 'none' };
    }
  }
  throw new Error(`unknown target ${String(target)}`);
}
