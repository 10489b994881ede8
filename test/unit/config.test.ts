import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULTS,
  MAX_TTL_SECONDS,
  MIN_TTL_SECONDS,
  parseEndpoints,
  parseId,
  parsePositiveInt,
  parseTtl,
  resolveProcess,
  UsageError,
} from '#platform/config.js';
import { ID_RE } from '#protocol/messages.js';

const usage = (fn: () => unknown, mentions: RegExp): void => {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UsageError, `expected UsageError, got ${String(err)}`);
    assert.equal(err.name, 'UsageError');
    assert.match(err.message, mentions);
    return true;
  });
};

describe('ttl', () => {
  test('bounds are 2..60 seconds', () => {
    // etcd refuses leases under 2 s by default.
    assert.equal(MIN_TTL_SECONDS, 2);
    assert.equal(MAX_TTL_SECONDS, 60);
  });

  test('the default is short enough for fast failover', () => {
    assert.ok(DEFAULTS.ttlSeconds >= MIN_TTL_SECONDS && DEFAULTS.ttlSeconds <= 5, `default is ${DEFAULTS.ttlSeconds}`);
    assert.equal(parseTtl(undefined), DEFAULTS.ttlSeconds);
    assert.equal(parseTtl(''), DEFAULTS.ttlSeconds);
  });

  test('accepts the bounds and values between', () => {
    assert.equal(parseTtl('2'), 2);
    assert.equal(parseTtl('10'), 10);
    assert.equal(parseTtl('60'), 60);
  });

  for (const raw of ['1', '0', '-3', '61', '3600', '2.5', 'abc', ' ', 'NaN', 'Infinity']) {
    test(`rejects ${JSON.stringify(raw)}`, () => usage(() => parseTtl(raw), /invalid --ttl .*from 2 to 60/));
  }
});

describe('ids', () => {
  test('a generated id has the role as prefix and is a valid id', () => {
    const a = parseId(undefined, 'worker');
    const b = parseId(undefined, 'worker');
    assert.match(a, /^worker-[0-9a-f]{8}$/);
    assert.match(a, ID_RE);
    assert.notEqual(a, b);
  });

  test('a given id is kept', () => {
    assert.equal(parseId('m1', 'master'), 'm1');
    assert.equal(parseId('x'.repeat(64), 'master'), 'x'.repeat(64));
  });

  // An id becomes a NATS subject token and an etcd key segment.
  for (const bad of ['', 'a.b', 'a b', '*', '>', 'a/b', 'x'.repeat(65), 'é']) {
    test(`rejects ${JSON.stringify(bad.length > 20 ? `${bad.slice(0, 5)}…` : bad)}`, () =>
      usage(() => parseId(bad, 'master'), /invalid --id/));
  }
});

describe('endpoints', () => {
  test('defaults when unset or empty', () => {
    assert.deepEqual(parseEndpoints(undefined), DEFAULTS.etcd);
    assert.deepEqual(parseEndpoints(''), DEFAULTS.etcd);
  });

  test('the default list is a copy, so callers cannot change the defaults', () => {
    const got = parseEndpoints(undefined);
    got.push('http://evil:1');
    assert.deepEqual(parseEndpoints(undefined), ['http://127.0.0.1:2379']);
  });

  test('splits on commas, trims, drops empties, keeps order and form', () => {
    assert.deepEqual(parseEndpoints(' http://a:2379 , b:2379,,https://c:2379 '), ['http://a:2379', 'b:2379', 'https://c:2379']);
  });

  test('a list of only separators is an error', () => {
    usage(() => parseEndpoints(' , ,'), /at least one endpoint/);
  });

  for (const bad of ['http://[::1', 'a b:2379', 'http://a:99999']) {
    test(`rejects ${JSON.stringify(bad)}`, () => usage(() => parseEndpoints(`http://ok:2379,${bad}`), /invalid etcd endpoint/));
  }
});

describe('parsePositiveInt', () => {
  test('fallback when unset, value when whole and in range', () => {
    assert.equal(parsePositiveInt(undefined, '--capacity', 7), 7);
    assert.equal(parsePositiveInt('', '--capacity', 7), 7);
    assert.equal(parsePositiveInt('1', '--capacity', 7), 1);
    assert.equal(parsePositiveInt('1000000', '--capacity', 7), 1_000_000);
  });

  for (const raw of ['0', '-1', '1.5', '1000001', 'ten']) {
    test(`rejects ${raw}, naming the flag`, () => usage(() => parsePositiveInt(raw, '--capacity', 7), /invalid --capacity/));
  }
});

describe('resolveProcess', () => {
  test('defaults with an empty environment', () => {
    const cfg = resolveProcess('master', {}, {});
    assert.match(cfg.id, /^master-[0-9a-f]{8}$/);
    assert.equal(cfg.natsUrl, DEFAULTS.natsUrl);
    assert.deepEqual(cfg.etcd, DEFAULTS.etcd);
    assert.equal(cfg.ttlSeconds, DEFAULTS.ttlSeconds);
    assert.equal(cfg.natsUser, undefined);
    assert.equal(cfg.natsPass, undefined);
    assert.equal(cfg.metricsPort, undefined);
  });

  const env = {
    GAFFER_ID: 'env-id',
    NATS_URL: 'nats://env:4222',
    ETCD_ENDPOINTS: 'http://env1:2379,http://env2:2379',
    GAFFER_TTL: '7',
    GAFFER_METRICS_PORT: '9100',
    NATS_USER: 'u',
    NATS_PASSWORD: 'p',
  };

  test('environment overrides defaults', () => {
    const cfg = resolveProcess('worker', {}, env);
    assert.deepEqual(cfg, {
      id: 'env-id',
      natsUrl: 'nats://env:4222',
      etcd: ['http://env1:2379', 'http://env2:2379'],
      ttlSeconds: 7,
      natsUser: 'u',
      natsPass: 'p',
      metricsPort: 9100,
    });
  });

  test('flags override environment', () => {
    const cfg = resolveProcess(
      'worker',
      { id: 'flag-id', nats: 'nats://flag:4222', etcd: 'flag:2379', ttl: '9', metricsPort: '9200' },
      env,
    );
    assert.equal(cfg.id, 'flag-id');
    assert.equal(cfg.natsUrl, 'nats://flag:4222');
    assert.deepEqual(cfg.etcd, ['flag:2379']);
    assert.equal(cfg.ttlSeconds, 9);
    assert.equal(cfg.metricsPort, 9200);
  });

  test('an invalid flag fails even when the environment is valid', () => {
    usage(() => resolveProcess('worker', { ttl: '1' }, env), /--ttl/);
    usage(() => resolveProcess('worker', { id: 'a.b' }, env), /--id/);
  });

  test('an invalid environment value fails rather than being ignored', () => {
    usage(() => resolveProcess('worker', {}, { GAFFER_TTL: '120' }), /--ttl/);
    usage(() => resolveProcess('worker', {}, { GAFFER_ID: 'a b' }), /--id/);
    usage(() => resolveProcess('worker', {}, { GAFFER_METRICS_PORT: 'x' }), /--metrics-port/);
  });

  test('an empty environment variable means unset', () => {
    const cfg = resolveProcess('worker', {}, { GAFFER_TTL: '', ETCD_ENDPOINTS: '', GAFFER_METRICS_PORT: '', NATS_USER: '' });
    assert.equal(cfg.ttlSeconds, DEFAULTS.ttlSeconds);
    assert.deepEqual(cfg.etcd, DEFAULTS.etcd);
    assert.equal(cfg.metricsPort, undefined);
    assert.equal(cfg.natsUser, undefined);
  });

  test(
    'a metrics port above 65535 is a usage error',
    () => {
      usage(() => resolveProcess('worker', { metricsPort: '70000' }, {}), /--metrics-port/);
    },
  );
});
