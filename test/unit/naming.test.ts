import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientSubject, Header, isClientSubject, MASTERS_QUEUE, subjects } from '#protocol/subjects.js';
import { keys, parseKey } from '#protocol/keys.js';

// Names may contain dots (NAME_RE allows them); worker ids may not.
const names = ['a', 'svc.alpha', 'a.b.c', 'a..b', 'x.', 'job-1_v2', 'n'.repeat(128)];
const workers = ['w1', 'worker-ab12cd34', 'W_9'];

describe('subjects', () => {
  test('client subjects are fixed and distinct', () => {
    assert.deepEqual(ClientSubject, {
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
    });
    assert.equal(new Set(Object.values(ClientSubject)).size, 15);
    assert.equal(MASTERS_QUEUE, 'masters');
  });

  test('isClientSubject accepts only client subjects', () => {
    for (const s of Object.values(ClientSubject)) assert.equal(isClientSubject(s), true);
    for (const s of ['resource', 'resource.>', 'resource.add.x', 'master.leader.m1', 'toString', '', undefined, 1]) {
      assert.equal(isClientSubject(s), false, JSON.stringify(s));
    }
  });

  test('per-process subjects put the id in exactly one token', () => {
    assert.equal(subjects.leader('m1'), 'master.leader.m1');
    assert.equal(subjects.workerAssign('w1'), 'worker.w1.assign');
    assert.equal(subjects.workerStatus('w1'), 'worker.w1.status');
    for (const id of workers) {
      assert.deepEqual(subjects.workerAssign(id).split('.'), ['worker', id, 'assign']);
      assert.deepEqual(subjects.workerStatus(id).split('.'), ['worker', id, 'status']);
      assert.deepEqual(subjects.leader(id).split('.'), ['master', 'leader', id]);
    }
  });

  test('wildcards match the subjects they are meant to', () => {
    // worker.*.assign must cover every workerAssign subject and nothing else the workers publish.
    const matches = (pattern: string, subject: string): boolean => {
      const p = pattern.split('.');
      const s = subject.split('.');
      for (let i = 0; i < p.length; i++) {
        if (p[i] === '>') return s.length > i;
        if (p[i] !== '*' && p[i] !== s[i]) return false;
      }
      return p.length === s.length;
    };
    for (const id of workers) {
      assert.ok(matches(subjects.allWorkerAssign, subjects.workerAssign(id)));
      assert.ok(!matches(subjects.allWorkerAssign, subjects.workerStatus(id)));
    }
    assert.equal(subjects.event('leader.elected'), 'events.leader.elected');
    assert.ok(matches(subjects.allEvents, subjects.event('leader.elected')));
    assert.ok(matches(subjects.allEvents, subjects.event('worker.lost')));
    assert.ok(!matches(subjects.allEvents, 'events'));
  });

  test('header names are fixed and distinct', () => {
    assert.equal(Header.contentType, 'Content-Type');
    assert.equal(Header.subject, 'Gaffer-Subject');
    assert.equal(Header.origin, 'Gaffer-Origin');
    const all = Object.values(Header).map((h) => h.toLowerCase());
    assert.equal(new Set(all).size, all.length, 'header names collide case-insensitively');
  });
});

describe('keys', () => {
  test('builders', () => {
    assert.equal(keys.candidate('694d77aa'), 'gaffer/election/694d77aa');
    assert.equal(keys.worker('w1'), 'gaffer/workers/w1');
    assert.equal(keys.resource('svc.alpha'), 'gaffer/resources/svc.alpha');
    assert.equal(keys.assignments('w1'), 'gaffer/assign/w1/');
    assert.equal(keys.assignment('w1', 'svc.alpha'), 'gaffer/assign/w1/svc.alpha');
  });

  test('every built key lies under its prefix', () => {
    assert.ok(keys.candidate('x').startsWith(keys.electionPrefix));
    assert.ok(keys.worker('w1').startsWith(keys.workersPrefix));
    assert.ok(keys.resource('a').startsWith(keys.resourcesPrefix));
    assert.ok(keys.assignments('w1').startsWith(keys.assignmentsPrefix));
    assert.ok(keys.assignment('w1', 'a').startsWith(keys.assignments('w1')));
  });

  test('prefixes are disjoint, so a range over one never reads another', () => {
    const prefixes = [keys.electionPrefix, keys.workersPrefix, keys.resourcesPrefix, keys.assignmentsPrefix];
    for (const a of prefixes) {
      assert.ok(a.startsWith('gaffer/') && a.endsWith('/'), a);
      for (const b of prefixes) if (a !== b) assert.ok(!b.startsWith(a), `${b} is under ${a}`);
    }
  });

  test("one worker's assignment prefix does not cover another whose id extends it", () => {
    // w1/ must not match w10/...: the trailing slash is what keeps a worker's range its own.
    assert.ok(!keys.assignment('w10', 'a').startsWith(keys.assignments('w1')));
  });
});

describe('parseKey', () => {
  test('worker and resource round-trip', () => {
    for (const id of workers) assert.equal(parseKey.worker(keys.worker(id)), id);
    for (const name of names) assert.equal(parseKey.resource(keys.resource(name)), name);
  });

  test('assignment round-trips, names with dots included', () => {
    for (const w of workers) {
      for (const name of names) assert.deepEqual(parseKey.assignment(keys.assignment(w, name)), { workerId: w, name });
    }
  });

  test('keys under another prefix do not parse', () => {
    assert.equal(parseKey.worker(keys.resource('a')), undefined);
    assert.equal(parseKey.resource(keys.worker('w1')), undefined);
    assert.equal(parseKey.resource('gaffer/resourcesX/a'), undefined);
    assert.equal(parseKey.worker('other/workers/w1'), undefined);
    assert.equal(parseKey.assignment(keys.resource('a')), undefined);
  });

  test('assignment keys without both parts do not parse', () => {
    assert.equal(parseKey.assignment('gaffer/assign/w1'), undefined);
    assert.equal(parseKey.assignment('gaffer/assign/'), undefined);
    assert.equal(parseKey.assignment('gaffer/assign//a'), undefined);
  });
});
