/**
 * Two lanes for request bodies: small ones parsed on the event loop, big ones on the thread pool.
 * The pool here is real (piscina threads running dist's task files), so "identical" means what a
 * handler sees: the same values and the same HttpErrors whichever lane ran the task.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { makeIngestBody } from '../../src/demo/s3';
import { HttpError } from '../../src/toolkit/http-error';
import { bodyLane, DEFAULT_INLINE_MAX_BYTES, parseJsonBody } from '../../src/toolkit/json-parse';
import { closePools, offloadInFlight } from '../../src/toolkit/offload';
import { offloadBody, parseJsonOffloaded } from '../../src/toolkit/offload-body';

const INGEST_TASKS = path.join(__dirname, '..', '..', 'src', 'demo', 'ingest-tasks.js');
const bytes = (s: string) => Buffer.from(s, 'utf8');
const INLINE = { inlineMaxBytes: Infinity };
const POOL = { inlineMaxBytes: 0 };

/** What a handler gets: `{ value }` or `{ error: { name, status, code, message } }`. */
async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { value: await p };
  } catch (e) {
    const err = e as HttpError;
    return { error: { name: err.name, status: err.status, code: err.code, message: err.message } };
  }
}

after(() => closePools());

describe('the lane decision', () => {
  it('parses bodies up to 32 KiB inline by default, bigger ones on the pool', () => {
    assert.equal(DEFAULT_INLINE_MAX_BYTES, 32 * 1024);
    assert.equal(bodyLane(0), 'inline');
    assert.equal(bodyLane(2_000), 'inline');
    assert.equal(bodyLane(32 * 1024), 'inline');
    assert.equal(bodyLane(32 * 1024 + 1), 'pool');
    assert.equal(bodyLane(25_000_000), 'pool');
  });

  it('follows the option: 0 sends every non-empty body to the pool, Infinity none', () => {
    assert.equal(bodyLane(1, 0), 'pool');
    assert.equal(bodyLane(0, 0), 'inline');
    assert.equal(bodyLane(25_000_000, Infinity), 'inline');
    assert.equal(bodyLane(1000, 1000), 'inline');
    assert.equal(bodyLane(1001, 1000), 'pool');
  });

  it('refuses a threshold that is not a number of bytes', () => {
    assert.throws(() => bodyLane(10, -1), TypeError);
    assert.throws(() => bodyLane(10, Number.NaN), TypeError);
  });
});

describe('inline and pool give identical results and errors', () => {
  const valid: [string, Buffer][] = [
    ['an object with unicode', bytes('{"name":"Zoë 🚀","n":[1,2.5,-0,1e300],"t":true,"z":null}')],
    ['a __proto__ key (an own property, not a prototype)', bytes('{"__proto__":{"x":1},"a":"\\u0000\\"\\\\"}')],
    ['exactly 256 levels', bytes('['.repeat(256) + ']'.repeat(256))],
    ['a scalar', bytes(' "just a string" ')],
    ['a 40 KB ingest body', makeIngestBody(40_000)],
  ];
  const invalid: [string, Buffer, string][] = [
    ['invalid UTF-8', Buffer.concat([bytes('{"name":"'), Buffer.from([0xc3, 0x28]), bytes('"}')]), 'INVALID_UTF8'],
    ['a lone surrogate half in UTF-8 (CESU)', Buffer.concat([bytes('"'), Buffer.from([0xed, 0xa0, 0x80]), bytes('"')]), 'INVALID_UTF8'],
    ['257 levels', bytes('['.repeat(257) + ']'.repeat(257)), 'TOO_DEEP'],
    ['100,000 levels', bytes('['.repeat(100_000) + ']'.repeat(100_000)), 'TOO_DEEP'],
    ['a syntax error', bytes('{"records": ['), 'MALFORMED_JSON'],
    ['a trailing comma', bytes('{"a":1,}'), 'MALFORMED_JSON'],
    ['only whitespace', bytes('  '), 'MALFORMED_JSON'],
  ];

  for (const [name, body] of valid) {
    it(`${name}: same value`, async () => {
      const inline = await outcome(parseJsonOffloaded(Buffer.from(body), INLINE));
      const pool = await outcome(parseJsonOffloaded(Buffer.from(body), POOL));
      assert.deepEqual(pool, inline);
      assert.deepEqual(inline, { value: parseJsonBody(body) });
    });
  }

  for (const [name, body, code] of invalid) {
    it(`${name}: same 400 ${code}`, async () => {
      const inline = await outcome(parseJsonOffloaded(Buffer.from(body), INLINE));
      const pool = await outcome(parseJsonOffloaded(Buffer.from(body), POOL));
      assert.deepEqual(pool, inline);
      assert.deepEqual(inline, { error: { name: 'HttpError', status: 400, code, message: (inline as { error: { message: string } }).error.message } });
    });
  }

  it('a custom depth limit applies in both lanes', async () => {
    const body = bytes('[[[[1]]]]');
    for (const o of [INLINE, POOL]) {
      assert.deepEqual(await outcome(parseJsonOffloaded(Buffer.from(body), { ...o, maxDepth: 4 })), { value: [[[[1]]]] });
      const tooDeep = (await outcome(parseJsonOffloaded(Buffer.from(body), { ...o, maxDepth: 3 }))) as { error: { code: string } };
      assert.equal(tooDeep.error.code, 'TOO_DEEP');
    }
    assert.deepEqual(await outcome(parseJsonOffloaded(Buffer.from(body), 3)), await outcome(parseJsonOffloaded(Buffer.from(body), { ...POOL, maxDepth: 3 })));
  });

  it("a user task (the S3 demo's parse + validate) gives the same summary and the same validation error", async () => {
    const run = (body: Buffer, o: object) => outcome(offloadBody('ingest', Buffer.from(body), {}, { filename: INGEST_TASKS, ...o }));
    const strip = (r: unknown) => {
      const v = (r as { value?: { summary: unknown } }).value;
      return v ? { summary: v.summary } : r;
    };
    const body = makeIngestBody(50_000);
    const inline = strip(await run(body, INLINE));
    assert.deepEqual(strip(await run(body, POOL)), inline);
    assert.ok((inline as { summary: { count: number } }).summary.count > 100);
    const invalid = bytes('{"records":[{"id":-1}]}');
    const err = await run(invalid, INLINE);
    assert.deepEqual(await run(invalid, POOL), err);
    assert.equal((err as { error: { code: string } }).error.code, 'INVALID_BODY');
  });

  it('by default a small body never reaches the pool and a big one does', async () => {
    const small = makeIngestBody(2_000);
    const big = makeIngestBody(200_000);
    let seen = 0;
    const tasks = offloadBody('ingest', big, {}, { filename: INGEST_TASKS }).finally(() => (seen = offloadInFlight(INGEST_TASKS)));
    assert.equal(offloadInFlight(INGEST_TASKS), 1, 'the big body went to the pool');
    const r = await offloadBody<{ summary: { count: number } }>('ingest', small, {}, { filename: INGEST_TASKS });
    assert.equal(offloadInFlight(INGEST_TASKS), 1, 'the small one was parsed while the big one was still on the pool');
    assert.ok(r.summary.count > 0);
    await tasks;
    assert.equal(seen, 0);
  });
});
