// Resource labels: spec.labels, a map of label words that selects resources
// (resource.list filters, resource.apply's prune). Worker labels (gaffer
// worker --label) use the same words but are another thing: they are what
// spec.constraints match.

import { BadRequestError } from './errors.js';
import { LABEL_RE, type Spec } from './messages.js';

/** validateLabels checks a label map: names and values are label words. */
export function validateLabels(v: unknown, what: string, nonEmpty = false): Record<string, string> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new BadRequestError(`"${what}" must be an object of label values`);
  const entries = Object.entries(v as Record<string, unknown>);
  if (nonEmpty && entries.length === 0) throw new BadRequestError(`"${what}" must name at least one label`);
  if (entries.length > 32) throw new BadRequestError(`"${what}" has more than 32 labels`);
  for (const [k, x] of entries) {
    if (!LABEL_RE.test(k)) throw new BadRequestError(`"${what}" label name ${JSON.stringify(k.slice(0, 70))} must match ${LABEL_RE.source}`);
    if (typeof x !== 'string' || !LABEL_RE.test(x)) throw new BadRequestError(`"${what}.${k}" must be a string matching ${LABEL_RE.source}`);
  }
  return { ...(v as Record<string, string>) };
}

/** labelsOf reads a (validated) spec's labels: spec.labels, or none. */
export function labelsOf(spec: Spec): Readonly<Record<string, string>> {
  const l = spec.labels;
  return l !== null && typeof l === 'object' && !Array.isArray(l) ? (l as Record<string, string>) : {};
}

/** matchesLabels: every label of the selector is on the spec with the same value. */
export function matchesLabels(spec: Spec, selector: Readonly<Record<string, string>>): boolean {
  const l = labelsOf(spec);
  for (const k in selector) if (l[k] !== selector[k]) return false;
  return true;
}
