/**
 * A raw HTTP/1.1 exchange over a plain TCP socket, for requests no well-behaved client would send
 * (bad framing, oversized headers, bodies the server should refuse before they end).
 */
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';

export interface RawAnswer {
  /** Status code, or 'closed' (connection closed with no answer) / 'no answer' (timeout). */
  status: number | 'closed' | 'no answer';
  headers: Record<string, string>;
  body: string;
  ms: number;
  /** Body bytes this client had written when the answer's first byte arrived. */
  sentBeforeAnswer: number;
}

export interface RawOptions {
  timeoutMs?: number;
  /**
   * Body to stream after `head`, in chunks, stopped as soon as an answer arrives. With `holdMs`,
   * no body byte goes out until that long has passed without an answer: a server that answers
   * on the headers alone then answers with 0 body bytes sent, whatever the kernel would buffer.
   */
  stream?: { chunk: Buffer; total: number; chunked: boolean; holdMs?: number };
}

/** Sends `head` (and optionally a streamed body) and reads one response. Never rejects. */
export function rawExchange(port: number, head: string | Buffer, o: RawOptions = {}): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let sent = 0;
    let sentBeforeAnswer = -1;
    let done = false;
    const finish = (status: RawAnswer['status'], headers: Record<string, string> = {}, body = '') => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status, headers, body, ms: performance.now() - started, sentBeforeAnswer: Math.max(0, sentBeforeAnswer) });
    };
    const timer = setTimeout(() => finish('no answer'), o.timeoutMs ?? 10_000);
    const parse = (final: boolean) => {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return final ? finish('closed') : undefined;
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? NaN);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const body = buf.subarray(end + 4);
      const length = headers['content-length'] !== undefined ? Number(headers['content-length']) : undefined;
      if (length !== undefined && body.length >= length) return finish(status, headers, body.subarray(0, length).toString('utf8'));
      if (final) return finish(status, headers, body.toString('utf8'));
    };
    socket.on('data', (b: Buffer) => {
      if (sentBeforeAnswer < 0) sentBeforeAnswer = sent;
      buf = Buffer.concat([buf, b]);
      parse(false);
    });
    socket.on('error', () => parse(true));
    socket.on('close', () => parse(true));
    socket.write(head);
    const s = o.stream;
    if (!s) return;
    const pump = () => {
      while (!done && sentBeforeAnswer < 0 && sent < s.total) {
        const data = s.chunked ? Buffer.concat([Buffer.from(`${s.chunk.length.toString(16)}\r\n`), s.chunk, Buffer.from('\r\n')]) : s.chunk;
        sent += s.chunk.length;
        if (!socket.write(data)) return void socket.once('drain', pump);
      }
      if (!done && sentBeforeAnswer < 0 && s.chunked && sent >= s.total) socket.write('0\r\n\r\n');
    };
    socket.once('connect', () => (s.holdMs ? setTimeout(pump, s.holdMs).unref() : pump()));
  });
}
