// A leader that has just loaded state asks each worker what it runs:
// "running" lives only in a leader's memory (workers report starts, which are
// not written), so it learns it again here. A worker that does not answer
// reports its starts again as it runs them, or is lost.

import { bulkhead } from 'cockatiel';
import { json } from '#protocol/codec.js';
import { subjects } from '#protocol/subjects.js';
import { decodeRunning, type RunningTask } from '#protocol/worker-status.js';
import type { Bus } from '#platform/ports.js';

/**
 * How many workers are asked at once: a worker process answering for
 * thousands of tasks is busy for a while, and a fleet that answers all at
 * once can starve its own lease keepalives right after a takeover.
 */
const AT_ONCE = 4;
const TIMEOUT_MS = 2000;

/** askRunning asks each worker, a few at a time, and hands on what each says it runs. */
export async function askRunning(bus: Bus, ids: readonly string[], onRunning: (worker: string, tasks: RunningTask[]) => void): Promise<void> {
  const few = bulkhead(AT_ONCE, Infinity);
  await Promise.all(
    ids.map((id) =>
      few.execute(async () => {
        try {
          const m = await bus.request(subjects.workerStatus(id), json.encode({}), { timeoutMs: TIMEOUT_MS });
          const tasks = decodeRunning(m.data);
          if (tasks.length > 0) onRunning(id, tasks);
        } catch {
          // Not answered: see above.
        }
      }),
    ),
  );
}
