// ChangeLog is what a batch did to the state, kept as it happens: the "before"
// of every resource it touched (the "after" is the state itself, read when
// the log is taken), cordons it changed, checkpoints it accepted or dropped,
// orphan assignment keys to delete, and what it did for events and handoff
// deadlines. The shell's encoder turns a taken log into etcd operations; the
// rules never encode.

import type { MoveReason } from '#protocol/messages.js';
import type { StoredCheckpoint } from '#protocol/stored.js';
import type { Assignment, Cordon, Entry } from './records.js';

/** What a name looked like in etcd before this batch touched it. */
export interface Before {
  existed: boolean;
  /** The resource id it had: a name deleted and added again in one batch is a different resource. */
  id: string | undefined;
  assign: Assignment | undefined;
}

/** Move records what a batch did to one resource's placement, for events. */
export type Move = { name: string; id: string; from: string | null; to: string | null; deleted: boolean; reason: MoveReason };

/** TaskChange records what a batch did to one task because of a report, for events. */
export type TaskChange =
  | { kind: 'completed'; name: string; id: string; worker: string }
  | { kind: 'failed'; name: string; id: string; worker: string; error: string; failures: number }
  | { kind: 'restarting'; name: string; id: string; worker: string; delayMs: number; attempt: number };

/** HandoffChange is a handoff a batch started (the shell arms its deadline) or ended (it disarms it). */
export type HandoffChange = { name: string; from: Assignment; started: boolean; deadlineMs?: number };

/** ResourceChange is one touched name: as it was, and as the batch leaves it (undefined: deleted). */
export interface ResourceChange {
  name: string;
  before: Before;
  after: Pick<Entry, 'rec' | 'assign' | 'handoff'> | undefined;
  /** A checkpoint accepted this batch, written with the record. */
  checkpoint?: StoredCheckpoint;
  /** The resource is gone and had a checkpoint: its key goes too. */
  dropCheckpoint?: boolean;
}

/** Changes is a taken change log: everything the encoder and the events need of one batch. */
export interface Changes {
  resources: ResourceChange[];
  cordons: Array<{ id: string; cordon: Cordon | undefined }>;
  /** Assignment keys a load found that no resource calls for. */
  orphans: Array<{ worker: string; name: string }>;
  moves: Move[];
  tasks: TaskChange[];
  handoffs: HandoffChange[];
}

export class ChangeLog {
  readonly before = new Map<string, Before>();
  readonly checkpoints = new Map<string, StoredCheckpoint>();
  readonly dropCheckpoints = new Set<string>();
  readonly cordons = new Set<string>();
  orphans: Array<{ worker: string; name: string }> = [];
  moves: Move[] = [];
  tasks: TaskChange[] = [];
  handoffs: HandoffChange[] = [];

  /** touched is how many resources the batch has touched so far (its budget counts them). */
  get touched(): number {
    return this.before.size;
  }

  /** take empties the log, reading each touched name's "after" and each changed cordon through the given lookups. */
  take(entry: (name: string) => Entry | undefined, cordon: (id: string) => Cordon | undefined): Changes {
    const resources: ResourceChange[] = [];
    for (const [name, before] of this.before) {
      const e = entry(name);
      const cp = this.checkpoints.get(name);
      resources.push({
        name,
        before,
        after: e && { rec: e.rec, assign: e.assign, ...(e.handoff ? { handoff: e.handoff } : {}) },
        ...(cp ? { checkpoint: cp } : {}),
        ...(!e && this.dropCheckpoints.has(name) ? { dropCheckpoint: true } : {}),
      });
    }
    const out: Changes = {
      resources,
      cordons: [...this.cordons].map((id) => ({ id, cordon: cordon(id) })),
      orphans: this.orphans,
      moves: this.moves,
      tasks: this.tasks,
      handoffs: this.handoffs,
    };
    this.before.clear();
    this.checkpoints.clear();
    this.dropCheckpoints.clear();
    this.cordons.clear();
    this.orphans = [];
    this.moves = [];
    this.tasks = [];
    this.handoffs = [];
    return out;
  }
}
