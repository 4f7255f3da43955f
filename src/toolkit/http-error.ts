import type { ServerResponse } from 'node:http';

/** An error meant for the client: a status, a stable code and one sentence. Never a stack. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Sends `{ error: { code, message } }`; unknown errors become a 500 that says nothing internal. */
export function sendError(res: ServerResponse, err: unknown, extraHeaders: Record<string, string> = {}): void {
  const e = err instanceof HttpError ? err : new HttpError(500, 'INTERNAL', 'internal error');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code: e.code, message: e.message } });
  res.writeHead(e.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...extraHeaders });
  res.end(body);
}
