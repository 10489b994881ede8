// The one table printer: aligned columns two spaces apart, no trailing
// spaces, and nothing from a cell that could move the cursor (untrusted text
// reaches terminals through the CLI and the reports).

export type Align = 'left' | 'right';

export const GAP = '  ';

/**
 * clean makes a string safe to print on one terminal line: control characters
 * (escape sequences, newlines, tabs) from untrusted payloads become `?`.
 */
export function clean(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '?');
}

export function pad(s: string, width: number, align: Align): string {
  const fill = ' '.repeat(Math.max(0, width - s.length));
  return align === 'right' ? fill + s : s + fill;
}

export type Cell = string | number | null | undefined;

export interface TableOptions {
  /** Per column; missing columns are left-aligned. */
  align?: readonly Align[];
  /** Draw a rule of dashes under the header. */
  rule?: boolean;
  /** What a missing (or non-finite) cell shows; default empty. */
  missing?: string;
}

/** numbersRight aligns the first column left and every other right: a table of figures. */
export const numbersRight = (columns: number): Align[] => Array.from({ length: columns }, (_, i) => (i === 0 ? 'left' : 'right'));

const show = (c: Cell, missing: string): string =>
  c === null || c === undefined || (typeof c === 'number' && !Number.isFinite(c)) ? missing : String(c);

/** table lays out a header and rows. */
export function table(headers: readonly string[], rows: readonly (readonly Cell[])[], opts: TableOptions = {}): string {
  const all = [headers, ...rows].map((r) => headers.map((_, i) => clean(show(r[i], opts.missing ?? ''))));
  const widths = headers.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((cell, i) => pad(cell, widths[i]!, opts.align?.[i] ?? 'left')).join(GAP).trimEnd();
  const out = all.map(line);
  if (opts.rule) out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join(GAP));
  return out.join('\n');
}
