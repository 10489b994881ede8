// When and how the unsharded crawl (index.ts) writes its checkpoint: every
// CHECKPOINT_EVERY_PAGES finished pages or CHECKPOINT_EVERY_MS, one write at
// a time. Its state is the whole frontier and visited set (checkpoint.ts
// encodes them), so it can outgrow MAX_STATE_BYTES; the rule for that case
// lives here with the write that meets it.

import { MAX_STATE_BYTES, type TaskContext } from '#kinds/api.js';
import { encodeState, stateBytes, type CrawlState } from './checkpoint.js';
import type { Frontier } from './frontier.js';

const CHECKPOINT_EVERY_PAGES = 50;
const CHECKPOINT_EVERY_MS = 5000;

/** The counters a checkpoint keeps besides the frontier. */
export type CrawlCounts = Omit<CrawlState, 'visited' | 'frontier'>;

export class CheckpointWriter {
  /** The write under way, if any. */
  writing: Promise<void> | undefined;
  private finishedSince = 0;
  private lastAt = Date.now();
  private oversizeWarned = false;

  constructor(
    private readonly ctx: TaskContext,
    private readonly frontier: Frontier,
    private readonly counters: () => CrawlCounts,
    /** Told when the checkpoint is refused: another worker owns the task now, which is fatal. */
    private readonly fail: (err: Error) => void,
  ) {}

  /** finished counts a finished page towards the next checkpoint. */
  finished(): void {
    this.finishedSince++;
  }

  /** maybe starts a write when one is due and none is under way. */
  maybe(): void {
    if (this.writing) return;
    const due =
      this.finishedSince >= CHECKPOINT_EVERY_PAGES ||
      (this.finishedSince > 0 && Date.now() - this.lastAt >= CHECKPOINT_EVERY_MS);
    if (!due) return;
    this.writing = this.write().finally(() => (this.writing = undefined));
  }

  /** write never rejects: a refusal goes to fail. */
  async write(): Promise<void> {
    const snap = this.frontier.snapshot();
    this.finishedSince = 0;
    this.lastAt = Date.now();
    if (snap === undefined) return;
    const state = encodeState({ ...snap, ...this.counters() });
    const size = stateBytes(state);
    if (size > MAX_STATE_BYTES) {
      // Trimming is not an option (a dropped frontier URL would be lost for
      // good), so keep the last checkpoint that fit and crawl on.
      if (!this.oversizeWarned) {
        this.ctx.log.warn({ bytes: size, max: MAX_STATE_BYTES, visited: this.frontier.visitedCount }, 'crawl: state too big to checkpoint; a restart resumes from the last one that fit (for a crawl this big, set spec.shards: its frontier and seen-set then live in JetStream, not in the checkpoint)');
        this.oversizeWarned = true;
      }
      // The visited list only grows: once it alone is over, no later
      // checkpoint can fit, so stop keeping its URLs (the seen set dedupes).
      if (stateBytes(encodeState({ ...snap, frontier: [], ...this.counters() })) > MAX_STATE_BYTES) this.frontier.forgetVisited();
      return;
    }
    try {
      await this.ctx.checkpoint(state);
    } catch (err) {
      this.fail(new Error(`crawl: checkpoint refused, stopping: ${(err as Error).message}`, { cause: err }));
    }
  }
}
