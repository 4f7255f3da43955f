import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { respawnDelay } from '../../src/primary/backoff';
import { isPrimaryMessage, isWorkerMessage } from '../../src/protocol';

describe('respawn backoff', () => {
  it('first respawn is immediate, then doubles to the cap', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => respawnDelay(k, 250, 15_000));
    assert.deepEqual(delays, [0, 250, 500, 1000, 2000, 4000, 8000, 15_000, 15_000]);
  });
});

describe('protocol guards', () => {
  it('accept drover messages of the right direction only', () => {
    assert.ok(isWorkerMessage({ type: 'drover:heartbeat' }));
    assert.ok(!isWorkerMessage({ type: 'drover:socket', id: 1 }));
    assert.ok(isPrimaryMessage({ type: 'drover:drain', timeoutMs: 1, idleGraceMs: 1 }));
    assert.ok(!isPrimaryMessage({ type: 'drover:heartbeat' }));
  });

  it('ignore messages of other libraries sharing the channel', () => {
    for (const m of [{ type: 'prom-client:getMetricsReq' }, { cmd: 'NODE_CLUSTER' }, 'ready', null, 42, { type: 7 }]) {
      assert.ok(!isWorkerMessage(m));
      assert.ok(!isPrimaryMessage(m));
    }
  });
});
