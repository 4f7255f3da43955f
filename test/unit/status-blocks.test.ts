/**
 * Blocking routes in the primary's view: /status keeps each worker's top routes by blocked
 * seconds, and `drover status` prints them under the workers table (and nothing when there are
 * none). Plain objects in, text out; the integration tests feed real blocks through the same path.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatBlocks, formatStatus, whereBlocked } from '../../src/cli';
import { BLOCKS_SHOWN, topBlockingRoutes, type Status, type WorkerStatus } from '../../src/primary/control-server';
import type { BlockingRoute } from '../../src/protocol';

const APP = '/srv/app/server.js';

function route(r: string, seconds: number, count: number, maxMs: number, stack?: string[]): BlockingRoute {
  return { route: r, count, seconds, maxMs, lastMs: maxMs, lastAt: '2026-12-01T22:00:00.000Z', ...(stack ? { stack, stackAt: '2026-12-01T21:59:00.000Z' } : {}) };
}

function worker(slot: number, pid: number, blocks: BlockingRoute[]): WorkerStatus {
  return {
    slot, id: slot + 1, pid, phase: 'listening', generation: 1, uptimeS: 12.5, heartbeatAgeMs: 4, heartbeats: 100, heartbeatIntervalMs: 20, heartbeatReportMs: 20,
    loopDelayP50Ms: 1, loopDelayP99Ms: 3.2, loopDelayMaxMs: 5, utilization: 0.12, rssBytes: 80 * 1048576, heapUsedBytes: 20 * 1048576,
    inFlight: 0, connections: 1, upgraded: 0, requests: 42, adopted: 40, dispatched: 40, privatePort: 40000 + slot, blocks,
  };
}

function status(workers: WorkerStatus[]): Status {
  return {
    drover: {
      version: '0.1.0', pid: 100, phase: 'running', ready: true, generation: 1, uptimeS: 13, workersTarget: workers.length, workersSource: 'flag',
      workersDetail: '--workers', dispatch: 'least-busy', app: APP, port: 3000, reload: null, exits: {} as Status['drover']['exits'], reloads: { completed: 0, aborted: 0 },
      dispatcher: { queuedNow: 0 } as Status['drover']['dispatcher'], heartbeat: { pace: 'fast', intervalMs: 20, paceChanges: 0 },
    },
    workers,
  };
}

describe('/status: blocking routes per worker', () => {
  it('keeps the top routes by blocked seconds, most first, at most BLOCKS_SHOWN', () => {
    const routes = ['/a', '/b', '/c', '/d', '/e', '/f', '/g'].map((r, i) => route(r, [0.2, 3, 0.5, 1, 0.1, 2, 0.3][i]!, 1, 100));
    const top = topBlockingRoutes(routes);
    assert.equal(BLOCKS_SHOWN, 5);
    assert.deepEqual(top.map((r) => r.route), ['/b', '/f', '/d', '/c', '/g']);
    assert.deepEqual(routes.map((r) => r.route), ['/a', '/b', '/c', '/d', '/e', '/f', '/g'], 'the input is left as it was');
    assert.deepEqual(topBlockingRoutes([]), []);
  });

  it('breaks a tie in seconds by count', () => {
    assert.deepEqual(topBlockingRoutes([route('/few', 1, 2, 500), route('/many', 1, 9, 120)]).map((r) => r.route), ['/many', '/few']);
  });
});

describe('drover status: blocking routes under the workers table', () => {
  it('prints nothing more when no worker has blocks', () => {
    const st = status([worker(0, 201, []), worker(1, 202, [])]);
    assert.equal(formatBlocks(st, '/srv/app'), '');
    const out = formatStatus(st, '/srv/app');
    assert.doesNotMatch(out, /ROUTE|block/i);
    assert.match(out, /\n1\s+202\s+listening[^\n]*\n$/, 'the workers table is the end of it');
  });

  it('lists route, count, blocked seconds, max ms and where, per worker', () => {
    const st = status([
      worker(0, 201, [
        route('/clients', 24.613, 41, 612.4, [
          'stringify ( :0:0)',
          'json (/srv/app/node_modules/express/lib/response.js:263:19)',
          'serializeClients (file:///srv/app/src/clients.ts:88:12)',
          'handle (/srv/app/node_modules/express/lib/router/layer.js:152:17)',
        ]),
        route('(none)', 0.25, 2, 130),
      ]),
      worker(1, 202, []),
      worker(2, 203, [route('/ingest', 1.5, 3, 700.6, ['parse (node:internal/deps/undici:1:1)', 'handler (/srv/app/server.js:30:5)'])]),
    ]);
    const out = formatStatus(st, '/srv/app');
    const [workers, blocks] = out.split('\nroutes that blocked an event loop');
    assert.ok(blocks, `a blocks section after the workers table:\n${out}`);
    assert.equal(workers!.split('\n').filter((l) => /^\d+\s+\d+\s+listening\b/.test(l)).length, 3, 'the workers table is unchanged');
    const lines = blocks.split('\n').slice(1).filter(Boolean);
    assert.match(lines[0]!, /^SLOT\s+PID\s+ROUTE\s+BLOCKS\s+BLOCKED\s+MAX\s+WHERE$/);
    assert.equal(lines.length, 4, out);
    assert.match(lines[1]!, /^0\s+201\s+\/clients\s+41\s+24\.6s\s+612ms\s+serializeClients \(src\/clients\.ts:88\)$/);
    assert.match(lines[2]!, /^0\s+201\s+\(none\)\s+2\s+0\.25s\s+130ms\s+-$/);
    assert.match(lines[3]!, /^2\s+203\s+\/ingest\s+3\s+1\.50s\s+701ms\s+handler \(server\.js:30\)$/);
    // Columns line up: every row's ROUTE starts where the header's does.
    const at = lines[0]!.indexOf('ROUTE');
    for (const l of lines.slice(1)) assert.notEqual(l[at], ' ', l);
  });

  it('tolerates a drover that predates blocks in /status', () => {
    const w = worker(0, 201, []);
    delete (w as Partial<WorkerStatus>).blocks;
    assert.equal(formatBlocks(status([w]), '/'), '');
  });
});

describe('where a route blocked: the innermost frame of the app', () => {
  const dir = '/srv/app';
  it('skips library and Node frames, shortens the path, keeps the line', () => {
    assert.equal(whereBlocked(['json (/srv/app/node_modules/express/lib/response.js:263:19)', 'list (/srv/app/routes/list.js:9:3)'], dir, '/'), 'list (routes/list.js:9)');
    assert.equal(whereBlocked(['readFileSync (node:fs:441:20)', ' (file:///srv/app/report.mjs:4:18)'], dir, '/'), '(anonymous) (report.mjs:4)');
  });

  it('falls back to the innermost frame, then to the current folder, then to the full path', () => {
    assert.equal(whereBlocked(['json (/srv/app/node_modules/express/lib/response.js:263:19)'], dir, '/'), 'json (node_modules/express/lib/response.js:263)');
    assert.equal(whereBlocked(['spin (/work/repo/src/demo/app.ts:80:7)'], '/work/repo/dist/src/demo', '/work/repo'), 'spin (src/demo/app.ts:80)');
    assert.equal(whereBlocked(['spin (/opt/x/y.js:1:2)'], dir, '/home/me'), 'spin (/opt/x/y.js:1)');
    assert.equal(whereBlocked(['readFileSync (node:fs:441:20)'], dir, dir), 'readFileSync (node:fs:441)');
  });

  it('is "-" without a stack, and a frame it cannot read is shown as it is', () => {
    assert.equal(whereBlocked(undefined, dir, dir), '-');
    assert.equal(whereBlocked([], dir, dir), '-');
    assert.equal(whereBlocked(['<native code>'], dir, dir), '<native code>');
  });
});
