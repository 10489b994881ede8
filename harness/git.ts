// What a report says about the code it measured: the commit, and whether the
// working tree differed from it. Outside a git checkout (a copied dist/) both
// still answer, so a report is written anyway.

import { execFileSync } from 'node:child_process';

function git(args: string[]): string {
  return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}

/** commit is HEAD's short hash, or 'unknown' outside a git checkout. */
export function commit(): string {
  try {
    return git(['rev-parse', '--short', 'HEAD']);
  } catch {
    return 'unknown';
  }
}

/** dirty says whether the working tree has uncommitted changes under `paths`; false outside a git checkout. */
export function dirty(paths: readonly string[]): boolean {
  try {
    return git(['status', '--porcelain', '--', ...paths]) !== '';
  } catch {
    return false;
  }
}
