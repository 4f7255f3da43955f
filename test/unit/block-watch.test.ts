/**
 * The main thread's half of block detection (src/worker/block-watch.ts, ADR 0018) on its own: no
 * watchdog thread, so no sample ever lands and what is checked is what the main thread decides
 * alone. A block is measured at the first sign after it (a heartbeat, or a request start after a
 * gap as long as the threshold); a synchronous run of the app that long names its own request;
 * an unsampled block is `(none)` when no request ran and `(unknown)` when one did. The loop is
 * held by spinning on the clock, as the demo's /block does.
 */
import assert from 'node:assert/strict';
import type * as http from 'node:http';
import { afterEach, before, describe, it } from 'node:test';
import { BlockWatch, NO_REQUEST, UNKNOWN } from '../../src/worker/block-watch';

const THRESHOLD_MS = 50;
/** Well past the threshold: the measure leaves out time the thread waited for a CPU, and a busy CI machine preempts a spinning test. */
const BLOCK_MS = 4 * THRESHOLD_MS;

function spin(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end);
}

/** A request as BlockWatch sees one: routeOf gives its label, `route` says Express matched it. */
function request(url: string): http.IncomingMessage {
  return { url, route: { path: url } } as unknown as http.IncomingMessage;
}

const RES = {} as http.ServerResponse;

let watch: BlockWatch | undefined;
afterEach(() => watch?.stop());

function start(inFlight = 0): BlockWatch {
  watch = new BlockWatch(THRESHOLD_MS, (req) => req.url!, () => inFlight, () => {}, () => {});
  watch.startCounting();
  return watch;
}

function routes(w: BlockWatch): Record<string, number> {
  return Object.fromEntries(w.top().map((r) => [r.route, r.count]));
}

describe('block detection on the main thread, without a sample', () => {
  // Loop utilization reads all zero until the event loop has started, and node:test may run the
  // first tests while the file is still being loaded.
  before(() => new Promise((resolve) => setImmediate(resolve)));

  it('a synchronous run of the app as long as the threshold is its request’s block, measured at the next heartbeat', () => {
    const w = start();
    w.run(request('/slow'), RES, () => spin(BLOCK_MS));
    assert.deepEqual(routes(w), {}, 'nothing is counted before the next sign');
    w.beat(100);
    assert.deepEqual(routes(w), { '/slow': 1 });
    assert.ok(w.top()[0]!.lastMs >= BLOCK_MS, JSON.stringify(w.top()));
    assert.equal(w.recorded, 1);
  });

  it('a request start after a block ends it: the block is measured there, before the new request runs', () => {
    const w = start();
    w.run(request('/slow'), RES, () => spin(BLOCK_MS));
    w.run(request('/quick'), RES, () => {});
    assert.deepEqual(routes(w), { '/slow': 1 });
  });

  it('quick requests and a heartbeat are no block', () => {
    const w = start();
    for (let i = 0; i < 100; i++) w.run(request('/quick'), RES, () => spin(1));
    w.beat(100);
    assert.deepEqual(routes(w), {});
  });

  it('a busy stretch of many short requests is no block: each request start is a sign', () => {
    const w = start();
    // 120 ms of work in all, none of it 50 ms long: a saturated loop, not a blocked one.
    for (let i = 0; i < 12; i++) w.run(request('/quick'), RES, () => spin(10));
    w.beat(100);
    assert.deepEqual(routes(w), {});
  });

  it('a block while no request ran is (none)', () => {
    const w = start();
    spin(BLOCK_MS);
    w.beat(100);
    assert.deepEqual(routes(w), { [NO_REQUEST]: 1 });
  });

  it('a block outside any request’s synchronous run while requests are in flight is (unknown) without a sample', () => {
    const w = start(1);
    spin(BLOCK_MS);
    w.beat(100);
    assert.deepEqual(routes(w), { [UNKNOWN]: 1 });
  });

  it('an idle gap longer than the threshold is no block', async () => {
    const w = start();
    await new Promise((resolve) => setTimeout(resolve, THRESHOLD_MS * 2));
    w.beat(100);
    assert.deepEqual(routes(w), {});
  });
});
