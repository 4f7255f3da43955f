/**
 * What the handle records from a worker's messages, and the lifecycle event each brings (the
 * supervisor feeds it to the machine, tested in worker-lifecycle.test.ts).
 */
import assert from 'node:assert/strict';
import type { Worker } from 'node:cluster';
import { describe, it } from 'node:test';
import { PROTOCOL_VERSION } from '../../src/protocol';
import { WorkerHandle } from '../../src/primary/worker-handle';

// The handle reads only the pid of the cluster worker it wraps.
const handle = () => new WorkerHandle({ process: { pid: 7 } } as unknown as Worker, 0, 1, 100);

describe('worker handle: messages in, lifecycle events out', () => {
  it('hello: an event carrying both protocol versions, and a sign of life', () => {
    const h = handle();
    assert.deepEqual(h.note({ type: 'drover:hello', protocol: 9, pid: 7 }, 150), { kind: 'hello', protocol: 9, expected: PROTOCOL_VERSION });
    assert.equal(h.lastBeatAt, 150);
  });

  it('listening while booting: when, and on which private port', () => {
    const h = handle();
    assert.deepEqual(h.note({ type: 'drover:listening', privatePort: 4000 }, 400), { kind: 'listening' });
    assert.equal(h.listeningAt, 400);
    assert.equal(h.privatePort, 4000);
  });

  it('listening from a worker already being killed at boot records nothing', () => {
    const h = handle();
    h.life = { ...h.life, state: 'stopping', reason: 'boot-timeout' };
    assert.deepEqual(h.note({ type: 'drover:listening', privatePort: 4000 }, 400), { kind: 'listening' });
    assert.equal(h.listeningAt, undefined);
    assert.equal(h.privatePort, undefined);
  });

  it('signal, app error and drained are events; blocks and beats are only data', () => {
    const h = handle();
    assert.deepEqual(h.note({ type: 'drover:signal', signal: 'SIGTERM' }, 500), { kind: 'signal', at: 500 });
    assert.deepEqual(h.note({ type: 'drover:app-error', message: 'boom', stack: undefined }, 500), { kind: 'app-error', message: 'boom' });
    assert.deepEqual(h.note({ type: 'drover:drained', forced: 0 }, 500), { kind: 'drained' });
    const routes = [{ route: '/x', count: 1, seconds: 0.2, maxMs: 200, lastMs: 200, lastAt: '2026-12-01T22:00:00.000Z' }];
    assert.equal(h.note({ type: 'drover:blocks', routes }, 500), undefined);
    assert.deepEqual(h.blocks, routes);
    const beat = { type: 'drover:heartbeat', seq: 1, nextMs: 20, inFlight: 2 } as Parameters<WorkerHandle['onBeat']>[0];
    assert.equal(h.note(beat, 600), undefined);
    assert.equal(h.lastBeatAt, 600);
    assert.equal(h.load(), 2);
  });
});

describe('worker handle: the load least-busy dispatch reads', () => {
  const beat = (inFlight: number) => ({ type: 'drover:heartbeat', seq: 1, nextMs: 20, inFlight }) as Parameters<WorkerHandle['onBeat']>[0];

  it('is the in-flight figure last reported plus the handoffs not acknowledged yet', () => {
    const h = handle();
    h.onBeat(beat(2), 200);
    assert.equal(h.load(), 2);
    h.unacked.add(1);
    h.unacked.add(2);
    assert.equal(h.load(), 4, 'two connections sent since');
  });

  it('an ack reports the worker’s in-flight requests and counts the connection it adopts', () => {
    const h = handle();
    h.onBeat(beat(5), 200);
    h.unacked.add(1);
    h.unacked.add(2);
    // The worker finished its five requests since its beat: the ack of connection 1 says so.
    h.onAdopted({ type: 'drover:adopted', id: 1, inFlight: 0 });
    h.unacked.delete(1);
    assert.equal(h.load(), 2, 'connection 1 (adopted, its request coming) and connection 2 (not acknowledged)');
    // The next beat is the newer report.
    h.onBeat(beat(1), 220);
    assert.equal(h.load(), 2, 'one request in flight and connection 2, still unacknowledged');
  });

  it('an ack without a figure (a worker from older files, mid-reload) leaves the last report', () => {
    const h = handle();
    h.onBeat(beat(3), 200);
    h.onAdopted({ type: 'drover:adopted', id: 1 });
    assert.equal(h.load(), 3);
  });
});
