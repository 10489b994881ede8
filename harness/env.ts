// Knobs from the environment: every script reads its numbers the same way,
// and an unusable value stops the run with the variable's name and the rule
// it broke, before anything is started.

export interface NumberRule {
  /** The smallest value allowed (default: any). */
  min?: number;
  /** Whether only whole numbers are allowed. */
  whole?: boolean;
}

/** envNumber reads env[key] as a number, or gives `fallback` when it is unset or empty; it throws when the value breaks `rule`. */
export function envNumber(env: NodeJS.ProcessEnv, key: string, fallback: number, rule: NumberRule = {}): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  const { min = -Infinity, whole = false } = rule;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || (whole && !Number.isInteger(n))) {
    throw new Error(`${key} must be ${whole ? 'a whole number' : 'a number'}${min > -Infinity ? ` ≥ ${min}` : ''}, not ${JSON.stringify(raw)}`);
  }
  return n;
}
