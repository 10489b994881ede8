// What the assignment publisher sends is built from the plan rather than read
// back from an etcd watch, so it must say exactly what the transactions write:
// replaying what each worker hears must give the assignment keys etcd holds.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Input } from '#actors/leader/core/batch.js';
import { ClusterState } from '#actors/leader/core/state.js';
import { loadWorker } from '#actors/leader/core/repair.js';
import { context, planned } from '../fakes/core.js';
import { packed } from '#protocol/codec.js';
import { parseKey } from '#protocol/keys.js';
import { add, del, request } from '../fakes/requests.js';

const WORKERS = ['w1', 'w2', 'w3'];
const NAMES = ['a', 'b', 'c', 'd', 'e', 'f'];

const input: fc.Arbitrary<Input> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NAMES).map((n): Input => ({ kind: 'client', req: add(n) })) },
  { weight: 2, arbitrary: fc.constantFrom(...NAMES).map((n): Input => ({ kind: 'client', req: del(n) })) },
  { weight: 1, arbitrary: fc.constantFrom(...NAMES).map((n): Input => ({ kind: 'client', req: request({ op: 'restart', name: n }) })) },
  { weight: 1, arbitrary: fc.constantFrom(...WORKERS).map((id): Input => ({ kind: 'worker-down', id })) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom(...WORKERS), fc.integer({ min: 1, max: 4 }), fc.nat(3)).map(
      ([id, capacity, inc]): Input => ({ kind: 'worker-up', id, capacity, epoch: `L-${id}-${inc}`, kinds: ['noop'], labels: {} }),
    ),
  },
  { weight: 1, arbitrary: fc.constant<Input>({ kind: 'rebalance', limits: { max: 3, fraction: 1 } }) },
  { weight: 1, arbitrary: fc.constantFrom(...WORKERS).map((id): Input => ({ kind: 'client', req: request({ op: 'drain', worker: id }) })) },
);

type Heard = { revision: number; epoch: string; id: string; attempt: number; hold: boolean } | null;

test('what workers hear on worker.<id>.assign, replayed, is what etcd holds under gaffer/assign/', () => {
  fc.assert(
    fc.property(fc.array(fc.array(input, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 25 }), (batches) => {
      const model = new ClusterState();
      loadWorker(model, 'w1', 3, 'L-w1-0', ['noop']);
      const etcd = new Map<string, Uint8Array>();
      const heard = new Map<string, Heard>(); // "<worker>/<name>" -> last event applied
      let revision = 1;
      for (const batch of batches) {
        const p = planned(model, batch, context());
        for (const t of p.txns) {
          revision++;
          for (const op of t.ops) {
            if ('put' in op) etcd.set(op.put, op.value);
            else etcd.delete(op.del);
          }
          model.committed(t.names, revision);
          for (const c of t.assigns) {
            const key = `${c.worker}/${c.task.name}`;
            const last = heard.get(key);
            if (last && last.revision >= revision) continue;
            heard.set(key, c.type === 'put' ? { revision, epoch: c.epoch, id: c.task.id, attempt: c.task.attempt, hold: !!c.task.hold } : null);
          }
        }
      }
      const want = new Map<string, Heard>();
      for (const [key, value] of etcd) {
        const k = parseKey.assignment(key);
        if (!k) continue;
        const v = packed.decode(value) as { epoch: string; id: string; attempt: number; hold?: boolean };
        want.set(`${k.workerId}/${k.name}`, { revision: 0, epoch: v.epoch, id: v.id, attempt: v.attempt, hold: !!v.hold });
      }
      const got = new Map([...heard].flatMap(([k, h]) => (h ? [[k, { ...h, revision: 0 }] as const] : [])));
      assert.deepEqual(Object.fromEntries([...got].sort()), Object.fromEntries([...want].sort()));
    }),
    { numRuns: 300 },
  );
});
