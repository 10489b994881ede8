// What a worker answers on worker.<id>.status, read back by a leader that has
// just loaded state: "running" lives only in a leader's memory, so it asks.

import { json } from './codec.js';
import type { WorkerStatusResult } from './messages.js';

export type RunningTask = Pick<WorkerStatusResult['tasks'][number], 'name' | 'id' | 'attempt'>;

/** decodeRunning reads the tasks a status answer says run, skipping any entry not shaped like one. */
export function decodeRunning(data: Uint8Array): RunningTask[] {
  const st = json.decode(data) as Partial<WorkerStatusResult> | null;
  const tasks: unknown[] = Array.isArray(st?.tasks) ? st.tasks : [];
  return tasks.flatMap((t) => {
    const x = t as Partial<RunningTask> | null;
    return x && typeof x.name === 'string' && typeof x.id === 'string' && typeof x.attempt === 'number' ? [{ name: x.name, id: x.id, attempt: x.attempt }] : [];
  });
}
