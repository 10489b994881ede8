// Results: the shape of results.json.

import type { BenchConfig, Section } from './config.js';
import type { FloorsResult } from './floors.js';
import type { AddResult } from './add.js';
import type { FailoverResult } from './failover.js';
import type { ScaleResult } from './scale.js';
import type { PlanResult } from './plan.js';
import type { CrawlBenchResult } from './crawl.js';
import type { ProfileResult } from './profile.js';
import type { MillionResult } from './million.js';
import type { CrawlScaleResult } from './crawl-scale.js';
import type { Verdict, VsFloors } from './ratios.js';

/** Part is a section's result, or why there is none. */
export type Part<T> = T | { error: string; ms: number } | { skipped: true };

export interface Results {
  meta: {
    startedAt: string;
    finishedAt?: string;
    quick: boolean;
    only: Section[];
    commit: string;
    /** src/ or actors/ had uncommitted changes when the run started (others edit the tree while we measure). */
    dirty: boolean;
    node: string;
    cpus: number;
    loadavg: number[];
    config: Omit<BenchConfig, 'only'>;
    sectionMs: Partial<Record<Section, number>>;
  };
  floors: Part<FloorsResult>;
  add: Part<AddResult>;
  failover: Part<FailoverResult>;
  scale: Part<ScaleResult>;
  plan: Part<PlanResult>;
  crawl: Part<CrawlBenchResult>;
  profile: Part<ProfileResult>;
  million?: Part<MillionResult>;
  'crawl-scale'?: Part<CrawlScaleResult>;
  vsFloors: VsFloors[];
  verdicts: Verdict[];
}

/** ok returns a part's result, or undefined when it was skipped or failed. */
export function ok<T>(p: Part<T> | undefined): T | undefined {
  return p && typeof p === 'object' && !('error' in p) && !('skipped' in p) ? (p as T) : undefined;
}
