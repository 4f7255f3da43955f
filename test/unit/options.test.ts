import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DroverError } from '../../src/errors';
import { defaults, parseDuration, resolveOptions } from '../../src/options';

describe('options', () => {
  it('parses durations with units only', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('2m'), 120_000);
    assert.equal(parseDuration('30'), undefined);
    assert.equal(parseDuration('-1s'), undefined);
    assert.equal(parseDuration('1h'), undefined);
  });

  it('defaults when nothing is given; workers from the CPU count', () => {
    const o = resolveOptions({}, {}, undefined, () => ({ count: 6, source: 'cpus', detail: 'test' }));
    assert.equal(o.workers, 6);
    assert.equal(o.workersSource, 'cpus');
    assert.equal(o.port, defaults.port);
    assert.equal(o.blockThresholdMs, 100);
    assert.equal(resolveOptions({ 'block-threshold': '0ms' }, {}).blockThresholdMs, 0);
    assert.equal(o.controlHost, '127.0.0.1');
    assert.equal(o.controlToken, undefined);
    assert.equal(o.dispatch, 'least-busy');
    assert.match(o.app, /demo[/\\]app\.js$/);
  });

  it('flags beat DROVER_* which beat the conventional names', () => {
    assert.equal(resolveOptions({}, { WEB_CONCURRENCY: '3' }).workers, 3);
    assert.equal(resolveOptions({}, { WEB_CONCURRENCY: '3', DROVER_WORKERS: '4' }).workers, 4);
    const o = resolveOptions({ workers: '5' }, { WEB_CONCURRENCY: '3', DROVER_WORKERS: '4' });
    assert.equal(o.workers, 5);
    assert.equal(o.workersSource, 'flag');
    assert.equal(resolveOptions({}, { PORT: '8080' }).port, 8080);
    assert.equal(resolveOptions({}, { DROVER_WORKER_TIMEOUT: '3s' }).workerTimeoutMs, 3000);
    assert.equal(resolveOptions({}, { DROVER_WORKERS: '' }, undefined, () => ({ count: 2, source: 'cgroup', detail: 'test' })).workers, 2, 'empty means unset');
  });

  it('rejects values with a sentence naming the flag or variable', () => {
    const err = (f: Record<string, string>, env: NodeJS.ProcessEnv = {}) => {
      try {
        resolveOptions(f, env);
      } catch (e) {
        assert.ok(e instanceof DroverError);
        assert.equal(e.exitCode, 2);
        return e.message;
      }
      assert.fail('expected an error');
    };
    assert.match(err({ 'drain-timeout': 'soon' }), /^--drain-timeout: expected a duration/);
    assert.match(err({}, { DROVER_DISPATCH: 'fastest' }), /^environment variable DROVER_DISPATCH: expected one of least-busy, round-robin/);
    assert.match(err({ 'heartbeat-interval': '50ms' }), /--heartbeat-interval \(50ms\) must be at most half of --dispatch-freshness \(60ms\)/);
    assert.match(err({ 'worker-timeout': '200ms', 'dispatch-freshness': '500ms' }), /--worker-timeout \(200ms\) must be longer/);
    assert.match(err({ 'heartbeat-idle-interval': '10ms' }), /--heartbeat-idle-interval \(10ms\) must not be shorter than --heartbeat-interval \(20ms\)/);
    assert.match(err({ 'worker-timeout': '300ms' }), /--worker-timeout \(300ms\) must be at least 4 times --heartbeat-idle-interval \(100ms\)/);
    assert.match(err({ 'block-threshold': '10ms' }), /--block-threshold \(10ms\) must be 0ms \(off\) or at least 20ms/);
    assert.equal(resolveOptions({ 'worker-timeout': '400ms' }, {}).workerTimeoutMs, 400);
    assert.match(err({ 'log-level': 'loud' }), /--log-level: expected one of fatal, error/);
  });
});
