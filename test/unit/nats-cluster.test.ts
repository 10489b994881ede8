// The pure parts of running on a NATS cluster: the --nats URL list, the
// replica and node counts, which node a local process starts on, a node's
// route config, and which chaos faults a cluster of a given size can take.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULTS, parseNatsNodes, parseNatsUrls, parseReplicas, resolveProcess, UsageError } from '#platform/config.js';
import { natsNodeFor, natsUrlsFor } from '#devcluster/nats-order.js';
import { natsConfig, routesConfig } from '#devcluster/servers.js';
import { FAULT_KINDS, faultKinds, schedule } from '#harness/faults.js';
import { chaosConfig } from '#chaos/config.js';
import { Rng } from '#harness/rng.js';

const usage = (fn: () => unknown, mentions: RegExp): void => {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UsageError, `expected UsageError, got ${String(err)}`);
    assert.match(err.message, mentions);
    return true;
  });
};

describe('parseNatsUrls', () => {
  test('one URL, a list in the order given, spaces trimmed', () => {
    assert.deepEqual(parseNatsUrls('nats://a:4222'), ['nats://a:4222']);
    assert.deepEqual(parseNatsUrls('nats://b:1, tls://a:2 ,c:3'), ['nats://b:1', 'tls://a:2', 'c:3']);
    assert.deepEqual(parseNatsUrls('127.0.0.1:4222,nats://[::1]:4223'), ['127.0.0.1:4222', 'nats://[::1]:4223']);
    assert.deepEqual(parseNatsUrls('nats://user:pw@host:4222'), ['nats://user:pw@host:4222']);
  });

  test('unset or empty is the default server', () => {
    assert.deepEqual(parseNatsUrls(undefined), [DEFAULTS.natsUrl]);
    assert.deepEqual(parseNatsUrls(''), [DEFAULTS.natsUrl]);
  });

  test('a stray comma is a usage error, not a server', () => {
    usage(() => parseNatsUrls('nats://a:1,'), /empty entry/);
    usage(() => parseNatsUrls('nats://a:1,,nats://b:2'), /empty entry/);
    usage(() => parseNatsUrls(','), /empty entry/);
  });

  test('schemes nats:// and tls:// only; no path; a port in range', () => {
    usage(() => parseNatsUrls('nats://a:1,http://b:2'), /scheme must be nats:\/\/ or tls:\/\/.*http:/);
    usage(() => parseNatsUrls('ws://a:80'), /scheme/);
    usage(() => parseNatsUrls('nats://a:4222/path'), /no path/);
    usage(() => parseNatsUrls('nats://a:4222?x=1'), /no path/);
    usage(() => parseNatsUrls('nats://a:70000'), /not a URL/);
    usage(() => parseNatsUrls('a b:4222'), /not a URL/);
  });

  test('a password in a bad URL is not repeated in the error', () => {
    assert.throws(
      () => parseNatsUrls('nats://u:s3cret@a:1/x'),
      (err: unknown) => err instanceof UsageError && !err.message.includes('s3cret') && err.message.includes('u:***@'),
    );
  });

  test('resolveProcess checks --nats and NATS_URL, and reads --nats-no-randomize / NATS_NO_RANDOMIZE', () => {
    const cfg = resolveProcess('worker', { id: 'w1', nats: 'nats://a:1, nats://b:2' }, {});
    assert.equal(cfg.natsUrl, 'nats://a:1,nats://b:2');
    assert.equal(cfg.natsNoRandomize, undefined, 'shuffled by default: a fleet given one list spreads over it');
    assert.equal(resolveProcess('worker', { id: 'w1', natsNoRandomize: true }, {}).natsNoRandomize, true);
    assert.equal(resolveProcess('worker', { id: 'w1' }, { NATS_NO_RANDOMIZE: 'on' }).natsNoRandomize, true);
    usage(() => resolveProcess('worker', { id: 'w1' }, { NATS_NO_RANDOMIZE: 'yes please' }), /NATS_NO_RANDOMIZE/);
    usage(() => resolveProcess('worker', { id: 'w1' }, { NATS_URL: 'nats://a:1,' }), /empty entry/);
  });
});

describe('replica and node counts', () => {
  test('--results-replicas is 1 to 5, default 1', () => {
    assert.equal(parseReplicas(undefined), 1);
    assert.equal(parseReplicas('3'), 3);
    for (const bad of ['0', '6', '2.5', 'three']) usage(() => parseReplicas(bad), /--results-replicas/);
  });

  test('--nats-nodes is 1 to 5, default 1', () => {
    assert.equal(parseNatsNodes(undefined), 1);
    assert.equal(parseNatsNodes('3'), 3);
    for (const bad of ['0', '6', '-1', 'x']) usage(() => parseNatsNodes(bad), /--nats-nodes/);
  });
});

describe('which NATS node a local process starts on', () => {
  test('the number its id ends with, less one, round the nodes', () => {
    assert.deepEqual(['m1', 'm2', 'm3'].map((id) => natsNodeFor(id, 3)), [0, 1, 2]);
    assert.deepEqual(['w1', 'w2', 'w3', 'w4'].map((id) => natsNodeFor(id, 3)), [0, 1, 2, 0]);
    assert.equal(natsNodeFor('w0', 3), 2, 'zero wraps round, never negative');
    assert.equal(natsNodeFor('m7', 1), 0);
  });

  test('an id without a number is spread by a stable hash', () => {
    const a = natsNodeFor('master-abc', 3);
    assert.ok(a >= 0 && a < 3);
    assert.equal(natsNodeFor('master-abc', 3), a);
  });

  test('every URL, its own node first, round from there', () => {
    const urls = ['n1', 'n2', 'n3'];
    assert.deepEqual(natsUrlsFor('m1', urls), ['n1', 'n2', 'n3']);
    assert.deepEqual(natsUrlsFor('m2', urls), ['n2', 'n3', 'n1']);
    assert.deepEqual(natsUrlsFor('w3', urls), ['n3', 'n1', 'n2']);
    assert.deepEqual(natsUrlsFor('w9', ['only']), ['only']);
  });

  test('a node count that is not a positive integer is a bug', () => {
    assert.throws(() => natsNodeFor('m1', 0), RangeError);
  });
});

describe('a cluster node config', () => {
  const routes = { cluster: 'gaffer-local', serverName: 'n2', port: 6002, peers: [6001, 6003], monitorPort: 8002 };

  test('server_name, a route listener, the other nodes as routes, a monitoring port', () => {
    const conf = routesConfig(routes);
    assert.match(conf, /^server_name: "n2"$/m);
    assert.match(conf, /^http: 127\.0\.0\.1:8002$/m);
    assert.match(conf, /name: "gaffer-local"/);
    assert.match(conf, /listen: 127\.0\.0\.1:6002/);
    assert.match(conf, /routes: \["nats-route:\/\/127\.0\.0\.1:6001", "nats-route:\/\/127\.0\.0\.1:6003"\]/);
    assert.doesNotMatch(conf, /authorization|tls/);
  });

  test('with a login and TLS: routes log in, and are TLS verified both ways', () => {
    const tls = { certFile: '/c.pem', keyFile: '/k.pem', caFile: '/ca.pem' };
    const conf = routesConfig({ ...routes, auth: { user: 'route', password: 'p/w' } }, tls);
    assert.match(conf, /authorization \{\n {4}user: "route"\n {4}password: "p\/w"/);
    assert.match(conf, /nats-route:\/\/route:p%2Fw@127\.0\.0\.1:6001/);
    assert.match(conf, /verify: true/);
  });

  test('the JetStream block stays last, after the cluster block (the last top-level block wins)', () => {
    const conf = natsConfig({ dir: '/tmp/x', extraConfig: 'jetstream { store_dir: "/elsewhere" }', routes }, 4222);
    assert.ok(conf.lastIndexOf('jetstream {') > conf.indexOf('cluster {'));
    assert.match(conf.slice(conf.lastIndexOf('jetstream {')), /store_dir: "\/tmp\/x\/jetstream"/);
    assert.doesNotMatch(natsConfig({ dir: '/tmp/x' }, 4222), /server_name|cluster/, 'one server: no cluster config');
  });
});

describe('chaos on a NATS cluster', () => {
  test('kill-nats only with 3 NATS nodes or more', () => {
    assert.ok(!faultKinds(1).includes('kill-nats'));
    assert.ok(!faultKinds(2).includes('kill-nats'));
    assert.deepEqual(faultKinds(3), [...FAULT_KINDS]);
  });

  test('the chaos run has 3 NATS nodes by default, and every kind each round', () => {
    const cfg = chaosConfig({});
    assert.equal(cfg.cluster.natsNodes, 3);
    assert.ok(cfg.kinds.includes('kill-nats'));
    const round = schedule(new Rng(1), cfg.kinds.length, cfg.kinds);
    assert.deepEqual([...round].sort(), [...cfg.kinds].sort());
  });

  test('CHAOS_NATS_NODES=1 leaves kill-nats out, and refuses it by name', () => {
    assert.ok(!chaosConfig({ CHAOS_NATS_NODES: '1' }).kinds.includes('kill-nats'));
    assert.throws(() => chaosConfig({ CHAOS_NATS_NODES: '1', CHAOS_KINDS: 'kill-nats' }), /kill-nats needs CHAOS_NATS_NODES of 3/);
    assert.deepEqual(chaosConfig({ CHAOS_KINDS: 'kill-nats' }).kinds, ['kill-nats']);
  });
});
