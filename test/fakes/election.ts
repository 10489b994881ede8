// FakeElection: an election a test decides. It hands the callbacks a master
// gives it back to the test, which says who leads (another master, us, or
// nobody) and whether etcd answers us.

import type { Candidate, ElectionCallbacks } from '#platform/etcd/election.js';
import type { Guard } from '#platform/ports.js';
import type { Elector } from '#actors/master/master.js';

export class FakeElection implements Elector {
  currentLeader: Candidate | undefined;
  storeReachable = true;
  members: string[] = [];
  started = false;
  resigned = false;
  closed = false;
  readonly stepDowns: string[] = [];
  readonly handOvers: string[] = [];
  private rev = 0;

  constructor(
    private readonly self: string,
    private readonly cb: ElectionCallbacks,
  ) {}

  async start(): Promise<void> {
    this.started = true;
  }

  /** lead makes `id` the leader (undefined: none known); when it is us, we start leading with the guard given. */
  lead(id: string | undefined, guard?: Guard): void {
    const was = this.currentLeader;
    this.currentLeader = id === undefined ? undefined : { id, key: guard?.key ?? `election/${id}/${++this.rev}`, createRevision: guard?.createRevision ?? this.rev, lease: `lease-${id}` };
    this.members = id === undefined ? [] : [id];
    this.cb.onLeaderChange(this.currentLeader);
    if (was?.id === this.self && id !== this.self) this.cb.onStoppedLeading('another candidate leads');
    if (id === this.self && was?.id !== this.self) this.cb.onStartedLeading(guard ?? { key: this.currentLeader!.key, createRevision: this.currentLeader!.createRevision });
  }

  stepDown(reason: string): void {
    this.stepDowns.push(reason);
  }

  handOver(reason: string): boolean {
    if (this.currentLeader?.id !== this.self || this.members.length < 2) return false;
    this.handOvers.push(reason);
    this.cb.onStoppedLeading(reason);
    return true;
  }

  async resign(): Promise<void> {
    this.resigned = true;
    if (this.currentLeader?.id === this.self) this.cb.onStoppedLeading('resigned');
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
