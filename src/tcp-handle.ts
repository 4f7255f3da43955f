/**
 * node's TCP handle for an accepted connection: what the primary hands to a worker. This is the
 * one place drover uses node internals, and they are the ones node:cluster's own round-robin
 * scheduler uses (lib/internal/cluster/round_robin_handle.js and child.js): the primary takes
 * over the listening handle's `onconnection`, so an accepted connection never becomes a JS
 * socket there, and the worker wraps the handle it receives in a net.Socket. Measured against
 * the public path (net.Server with pauseOnConnect, a net.Socket per connection in the primary):
 * docs/adr/0008-raw-handle-dispatch.md.
 */
import * as net from 'node:net';

/** An accepted connection as node's TCP wrap. child_process sends it as a 'net.Native' handle. */
export interface TcpHandle {
  close(callback?: () => void): void;
  setNoDelay?(enable: boolean): number;
}

interface ListeningHandle {
  onconnection: ((status: number, client?: TcpHandle) => void) | undefined;
}

/**
 * Route every connection a listening net.Server accepts to `onConnection` as a bare handle (not
 * read from: the kernel buffers request bytes until a worker reads them). `status` is a negative
 * errno when accept failed (EMFILE, ENFILE, ...). Throws if this node has no such handle.
 */
export function takeOverAccept(server: net.Server, onConnection: (status: number, client: TcpHandle | undefined) => void): void {
  const handle = (server as unknown as { _handle?: ListeningHandle })._handle;
  if (!server.listening || typeof handle?.onconnection !== 'function') {
    throw new Error(`this node (${process.version}) has no listening TCP handle on net.Server; drover's dispatcher needs one (as node:cluster does)`);
  }
  handle.onconnection = onConnection;
}

/**
 * The worker's side: a socket over a handle the primary sent, set up as an http.Server's own
 * accept would set it up (net.Server's onconnection, with http.Server's options), so the app
 * sees the same sockets as under plain node or node:cluster.
 */
export function socketFromHandle(handle: TcpHandle): net.Socket {
  // http.Server disables Nagle on its connections (noDelay defaults to true since node 18).
  handle.setNoDelay?.(true);
  // http.Server's sockets are half-open capable: the HTTP layer, not the socket, decides what a
  // client's FIN means.
  return new net.Socket({ handle, allowHalfOpen: true, readable: true, writable: true } as net.SocketConstructorOpts);
}
