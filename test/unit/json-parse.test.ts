import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { readRawBody } from '../../src/toolkit/body';
import { HttpError } from '../../src/toolkit/http-error';
import { jsonDepth, parseJsonBody } from '../../src/toolkit/json-parse';

const bytes = (s: string) => Buffer.from(s, 'utf8');

describe('strict JSON body parsing', () => {
  it('measures nesting without parsing, ignoring brackets inside strings', () => {
    assert.equal(jsonDepth(bytes('{"a":[1,{"b":[]}]}'), 256), 4);
    assert.equal(jsonDepth(bytes('{"a":"[[[[{{{{\\"]]"}'), 256), 1);
    assert.equal(jsonDepth(bytes('"x"'), 256), 0);
    assert.equal(jsonDepth(bytes('['.repeat(100_000) + ']'.repeat(100_000)), 256), 257, 'stops as soon as it is too deep');
  });

  it('refuses 100,000 levels with a 400, before JSON.parse builds them', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    assert.throws(() => parseJsonBody(bytes(deep)), (e: HttpError) => e.status === 400 && e.code === 'TOO_DEEP');
    assert.deepEqual(parseJsonBody(bytes('['.repeat(256) + ']'.repeat(256)), 256) !== undefined, true);
  });

  it('invalid UTF-8 is a 400, not a silent U+FFFD', () => {
    const bad = Buffer.concat([bytes('{"name":"'), Buffer.from([0xc3, 0x28]), bytes('"}')]);
    assert.throws(() => parseJsonBody(bad), (e: HttpError) => e.status === 400 && e.code === 'INVALID_UTF8');
    assert.deepEqual(parseJsonBody(bytes('{"name":"Zoë 🚀"}')), { name: 'Zoë 🚀' });
  });

  it('malformed JSON is a 400 naming the problem', () => {
    assert.throws(() => parseJsonBody(bytes('{"a":')), (e: HttpError) => e.status === 400 && e.code === 'MALFORMED_JSON' && /malformed JSON/.test(e.message));
  });
});

describe('readRawBody', () => {
  async function server(limit: number) {
    const seen: { status: number; size?: number }[] = [];
    const srv = http.createServer((req, res) => {
      readRawBody(req, { limit }).then(
        (b) => {
          seen.push({ status: 200, size: b.length });
          res.end(String(b.length));
        },
        (e: HttpError) => {
          seen.push({ status: e.status });
          res.writeHead(e.status, { connection: 'close' }).end(e.code);
        },
      );
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    return { srv, seen, url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/` };
  }

  it('accepts a body within the limit', async () => {
    const s = await server(1000);
    const r = await fetch(s.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(1000) });
    assert.equal(r.status, 200);
    assert.equal(await r.text(), '1000');
    s.srv.close();
  });

  it('refuses a declared oversized body with 413 before reading it', async () => {
    const s = await server(1000);
    const r = await fetch(s.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(5000) });
    assert.equal(r.status, 413);
    assert.equal(await r.text(), 'BODY_TOO_LARGE');
    s.srv.close();
  });

  it('cuts off a chunked body as soon as it passes the limit', async () => {
    const s = await server(64 * 1024);
    let sent = 0;
    const body = new ReadableStream({
      pull(c) {
        if (sent > 50 * 1024 * 1024) return c.close();
        sent += 64 * 1024;
        c.enqueue(new Uint8Array(64 * 1024));
      },
    });
    const r = await fetch(s.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, duplex: 'half' } as RequestInit).catch(() => undefined);
    assert.equal(r?.status, 413);
    assert.ok(sent < 50 * 1024 * 1024, `the client was stopped early (${sent} bytes sent)`);
    s.srv.close();
  });

  /** A server answering with what readRawBody gave it: size, sha256 and whether it owns its memory. */
  async function echo(limit: number) {
    const srv = http.createServer((req, res) => {
      readRawBody(req, { limit }).then(
        (b) => res.end(JSON.stringify({ size: b.length, sha: createHash('sha256').update(b).digest('hex'), owns: b.byteOffset === 0 && b.byteLength === b.buffer.byteLength })),
        (e: HttpError) => res.writeHead(e.status, { connection: 'close' }).end(e.code),
      );
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    return { srv, url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/` };
  }
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const big = Buffer.from(Array.from({ length: 3 * 2 ** 20 }, (_, i) => (i * 31) % 251));

  it('copies a big declared body in as it arrives: same bytes, in memory of its own (moves to a thread without a copy)', async () => {
    const s = await echo(8 * 2 ** 20);
    const r = await fetch(s.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
    assert.deepEqual(await r.json(), { size: big.length, sha: sha(big), owns: true });
    s.srv.close();
  });

  it('joins a big chunked body in slices: same bytes, in memory of its own', async () => {
    const s = await echo(8 * 2 ** 20);
    let off = 0;
    const body = new ReadableStream({
      pull(c) {
        if (off >= big.length) return c.close();
        c.enqueue(new Uint8Array(big.subarray(off, (off += 100_000))));
      },
    });
    const r = await fetch(s.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, duplex: 'half' } as RequestInit);
    assert.deepEqual(await r.json(), { size: big.length, sha: sha(big), owns: true });
    s.srv.close();
  });

  it('a body exactly at the limit is accepted both ways, one byte over is a 413 both ways', async () => {
    const s = await echo(big.length);
    const chunked = (b: Buffer) => new ReadableStream({ start: (c) => (c.enqueue(new Uint8Array(b)), c.close()) });
    const send = (body: Buffer | ReadableStream) => fetch(s.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, duplex: 'half' } as RequestInit);
    assert.equal((await send(big)).status, 200);
    assert.equal((await send(chunked(big))).status, 200);
    const over = Buffer.concat([big, Buffer.from('x')]);
    assert.equal((await send(over)).status, 413);
    assert.equal((await send(chunked(over)).catch(() => undefined))?.status, 413);
    s.srv.close();
  });

  it('refuses a wrong content type with 415', async () => {
    const s = await server(1000);
    const r = await fetch(s.url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' });
    assert.equal(r.status, 415);
    s.srv.close();
  });
});
