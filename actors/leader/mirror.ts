// AssignMirror publishes every change to the assignment keys on the subject of
// the worker it concerns (worker.<id>.assign), as etcd's watch reports it:
// committed changes only, in revision order. Workers apply each event only if
// it is newer than what they know (actors/worker/assignments.ts).

import { json } from '../../src/protocol/codec.js';
import { parseKey } from '../../src/protocol/keys.js';
import { subjects } from '../../src/protocol/subjects.js';
import { decodeAssignment } from '../../src/protocol/stored.js';
import type { AssignEvent } from '../../src/protocol/messages.js';
import type { Bus, WatchEvent } from '../../src/platform/ports.js';
import type { Logger } from '../../src/platform/log.js';

export function mirror(bus: Bus, events: readonly WatchEvent[], log: Logger): void {
  for (const ev of events) {
    const k = parseKey.assignment(ev.kv.key);
    const raw = ev.type === 'put' ? ev.kv.value : ev.prev?.value;
    if (!k || !raw) continue;
    let a;
    try {
      a = decodeAssignment(raw, ev.kv.modRevision);
    } catch (err) {
      log.warn({ key: ev.kv.key, err: (err as Error).message }, 'not mirroring a malformed assignment');
      continue;
    }
    const msg: AssignEvent = { type: ev.type, resource: a.resource, revision: ev.kv.modRevision, epoch: a.epoch };
    bus.publish(subjects.workerAssign(k.workerId), json.encode(msg));
  }
}
