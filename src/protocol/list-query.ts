// The filters of resource.list: by state, worker, task kind, resource labels
// (spec.labels) and name prefix. They are applied by the leader, page by page,
// so a client of a big cluster reads only what it asked for.

import { BadRequestError } from './errors.js';
import { validateLabels, matchesLabels } from './labels.js';
import { KIND_RE, NAME_RE, ResourceState, type Spec } from './messages.js';
import { taskKindOf, validateId } from './validate.js';

export interface ListFilter {
  state?: ResourceState;
  /** On this worker; "" for none (pending). */
  worker?: string;
  kind?: string;
  /** Every one of these spec.labels, with these values. */
  labels?: Record<string, string>;
  /** Names that start with this. */
  prefix?: string;
}

export const LIST_FILTER_FIELDS = ['state', 'worker', 'kind', 'labels', 'prefix'] as const;

const STATES: ReadonlySet<string> = new Set(Object.values(ResourceState));

/** validateListFilter reads the filter fields of a list body (the caller checks for unknown fields). */
export function validateListFilter(r: Record<string, unknown>): ListFilter {
  const f: ListFilter = {};
  if (r.state !== undefined) {
    if (typeof r.state !== 'string' || !STATES.has(r.state)) throw new BadRequestError(`"state" must be one of ${[...STATES].join(', ')}`);
    f.state = r.state as ResourceState;
  }
  if (r.worker !== undefined) f.worker = r.worker === '' ? '' : validateId(r.worker, 'worker');
  if (r.kind !== undefined) {
    if (typeof r.kind !== 'string' || !KIND_RE.test(r.kind)) throw new BadRequestError(`"kind" must match ${KIND_RE.source}`);
    f.kind = r.kind;
  }
  if (r.labels !== undefined) f.labels = validateLabels(r.labels, 'labels', true);
  if (r.prefix !== undefined) {
    if (typeof r.prefix !== 'string' || !NAME_RE.test(r.prefix)) throw new BadRequestError(`"prefix" must match ${NAME_RE.source}`);
    f.prefix = r.prefix;
  }
  return f;
}

/** What a filter looks at in a resource. */
export interface Filterable {
  name: string;
  state: ResourceState;
  worker: string | null;
  spec: Spec;
}

/** matchesFilter says whether a resource passes every filter given. */
export function matchesFilter(r: Filterable, f: ListFilter): boolean {
  if (f.prefix !== undefined && !r.name.startsWith(f.prefix)) return false;
  if (f.state !== undefined && r.state !== f.state) return false;
  if (f.worker !== undefined && (r.worker ?? '') !== f.worker) return false;
  if (f.kind !== undefined && taskKindOf(r.spec) !== f.kind) return false;
  if (f.labels !== undefined && !matchesLabels(r.spec, f.labels)) return false;
  return true;
}

/** hasFilter: any filter is set. */
export const hasFilter = (f: ListFilter): boolean => LIST_FILTER_FIELDS.some((k) => f[k] !== undefined);
