// Which NATS node a local process connects to first. With several routed
// nats-servers, masters and workers are spread over them, so requests,
// forwards to master.leader.<id>, probes and assignments cross routes the
// way they do in a real deployment, and killing one node cuts off some
// processes and not others. Each still gets every node's URL, so it can
// reconnect to the others.

import { createHash } from 'node:crypto';

/**
 * natsNodeFor is the node a process starts on: the number its id ends with,
 * less one, modulo the node count (m1 and w1 on the first node, m2 on the
 * second, …), so a restarted process goes back to the same node; an id
 * without a number is spread by a hash of it.
 */
export function natsNodeFor(id: string, nodes: number): number {
  if (!Number.isInteger(nodes) || nodes < 1) throw new RangeError(`node count must be a positive integer, not ${nodes}`);
  const m = /(\d+)$/.exec(id);
  const k = m ? Number(m[1]) - 1 : createHash('sha256').update(id).digest().readUInt32BE(0);
  return ((k % nodes) + nodes) % nodes;
}

/** natsUrlsFor lists every node's URL, starting at the process's own node and going round from there. */
export function natsUrlsFor(id: string, urls: readonly string[]): string[] {
  if (urls.length <= 1) return [...urls];
  const first = natsNodeFor(id, urls.length);
  return [...urls.slice(first), ...urls.slice(0, first)];
}
