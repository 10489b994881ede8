// nats.conf names every client subject: clients may send each, and masters
// serve each only in the masters queue group. A subject added to
// ClientSubject but not to nats.conf works everywhere but on a secured
// server, where its requests get no responders.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ClientSubject, MASTERS_QUEUE } from '#protocol/subjects.js';
import { repoPath } from '#harness/runner.js';

test('nats.conf lets clients send, and masters serve in their queue group, every client subject', () => {
  const conf = readFileSync(repoPath('nats.conf'), 'utf8');
  for (const s of Object.values(ClientSubject)) {
    assert.ok(conf.includes(`"${s}"`), `the client user may publish ${s}`);
    assert.ok(conf.includes(`"${s} ${MASTERS_QUEUE}"`), `masters subscribe to ${s} in queue ${MASTERS_QUEUE}`);
  }
});
