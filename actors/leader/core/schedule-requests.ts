// The schedule requests (schedule.pause, resume, trigger, backfill): each
// changes the resource's record and is answered with the resource as it
// then is. A re-sent copy gets the first answer, remembered like a restart's
// (the resource by name and id), so a trigger sent twice runs once.

import { ConflictError, NotFoundError } from '#protocol/errors.js';
import type { Resource } from '#protocol/messages.js';
import type { Outcome } from '#protocol/outcomes.js';
import type { ClientRequest, Command } from '#protocol/request.js';
import { MAX_BACKFILL } from '#protocol/schedule-ops.js';
import { InvalidScheduleError, scheduleOf } from '#protocol/schedule.js';
import { toResource } from '#protocol/stored.js';
import type { ClusterState } from './state.js';
import type { Entry } from './records.js';
import type { PlannedReply, RevisionOf, WireReply } from './batch.js';
import { backfill, backfillTimes, fire, pause, resume, scheduleView } from './schedules.js';

type ScheduleCommand = Extract<Command, { op: 'schedule' }>;

/** viewOf is a resource as clients see it, with its schedule and runs when it has one. */
export function viewOf(e: Pick<Entry, 'rec' | 'revision'>, wall: number): Resource {
  return { ...toResource(e.rec, e.revision), ...scheduleView(e, wall) };
}

const failure = (req: ClientRequest, error: { toWire(): { code: string; message: string } }): { reply: PlannedReply } => {
  const wire = error.toWire();
  return { reply: { req, build: (): WireReply => ({ ok: false, error: wire }) } };
};

export function planSchedule(s: ClusterState, req: ClientRequest, c: ScheduleCommand): { reply: PlannedReply; outcome?: { name: string; outcome: Outcome } } {
  const e = s.resources.get(c.name);
  if (!e) return { ...failure(req, new NotFoundError(`no resource named ${c.name}`)), outcome: { name: c.name, outcome: { op: 'absent', name: c.name } } };
  const sch = scheduleOf(e.rec.spec);
  if (!sch || !e.rec.sched) return failure(req, new ConflictError(`${c.name} has no spec.schedule`));
  const wall = s.schedules.wall;
  let extra: Record<string, unknown> = {};
  switch (c.action) {
    case 'pause':
      if (e.rec.sched.paused) return failure(req, new ConflictError(`${c.name} is paused already`));
      pause(s, e, c.note);
      break;
    case 'resume':
      if (!e.rec.sched.paused) return failure(req, new ConflictError(`${c.name} is not paused`));
      resume(s, e, c.note);
      break;
    case 'trigger': {
      // A trigger that would only be skipped is refused, so the caller knows it did not run.
      if (e.rec.sched.current && sch.overlap === 'skip') {
        return failure(req, new ConflictError(`${c.name} is running run ${e.rec.sched.current.run} and its overlap policy is skip`));
      }
      extra = { fired: fire(s, e, wall, 'trigger', sch.overlap) };
      break;
    }
    case 'backfill': {
      const times = backfillTimes(sch, c.from!, c.to!, MAX_BACKFILL);
      if (times.length > MAX_BACKFILL) return failure(req, new InvalidScheduleError(`the range holds more than ${MAX_BACKFILL} fire times`));
      if (times.length === 0) return failure(req, new InvalidScheduleError('the range holds no fire time of this schedule'));
      extra = { fires: times.length, ...backfill(s, e, times, c.overlap ?? sch.overlap) };
      break;
    }
  }
  const now = s.resources.get(c.name)!;
  const r = viewOf(now, wall);
  return {
    reply: { req, build: (rev: RevisionOf) => ({ ok: true, ...extra, resource: { ...r, revision: rev(c.name) ?? r.revision } }) },
    outcome: { name: c.name, outcome: { op: 'restart', rec: now.rec } },
  };
}
