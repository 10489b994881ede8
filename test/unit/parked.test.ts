// The master's parked requests: kept while no leader is known, each for at
// most the park time, and taken out all at once when a leader is known.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ParkedRequests } from '#actors/master/parked.js';
import { FakeClock } from '../fakes/clock.js';
import { add } from '../fakes/requests.js';

describe('ParkedRequests', () => {
  test('parks until taken, or expires each request after waitMs', async () => {
    const clock = new FakeClock();
    const expired: string[] = [];
    const q = new ParkedRequests(clock, 3000, (req) => expired.push(req.id));
    q.park(add('a', { id: 'x1' }));
    await clock.advance(2000);
    q.park(add('b', { id: 'x2' }));
    await clock.advance(1500);
    assert.deepEqual(expired, ['x1']);
    assert.deepEqual(q.take().map((r) => r.id), ['x2']);
    await clock.advance(5000);
    assert.deepEqual(expired, ['x1'], 'a taken request never expires');
    assert.equal(q.size, 0);
  });
});
