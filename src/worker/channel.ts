import type { ListenOptions } from 'node:net';
import { isPrimaryMessage, type PrimaryToWorker, type WorkerToPrimary } from '../protocol';

/**
 * What a worker (start-worker.ts) needs from the process that hosts it: the link to its primary,
 * and where its app server listens. The two hosts differ only in the latter:
 * - drover's worker entry (main.ts): drover's primary hands over accepted sockets, and the server
 *   listens on a private loopback port only so that node runs its timeouts;
 * - the peers bench's control row (bench/peers/cluster-drover-workers.ts): node:cluster's own
 *   primary, whose round-robin hands out connections of the port the workers listen on together.
 */
export interface WorkerChannel {
  /** Sends to the primary; `cb` runs once the message is written, or dropped (`err`: the channel closed). */
  send(msg: WorkerToPrimary, cb?: (err?: Error) => void): void;
  /** `on` gets each drover message from the primary, with the handle it carries (drover:socket). */
  onMessage(on: (msg: PrimaryToWorker, handle: unknown) => void): void;
  /** `on` runs when the primary is gone (its end of the channel closed). */
  onDisconnect(on: () => void): void;
  /** Exits the process, after the messages already sent reach the primary. */
  exit(code: number): void;
  /** Where the app server listens (net.Server#listen options). */
  listen: ListenOptions;
}

/** The IPC channel of a forked (cluster) worker process. */
export function processChannel(listen: ListenOptions): WorkerChannel {
  return {
    listen,
    send(msg, cb) {
      if (!process.connected || !process.send) return cb?.();
      // The channel can close between the check and the write (primary exiting): `err` then.
      process.send(msg, undefined, {}, (err: Error | null) => cb?.(err ?? undefined));
    },
    onMessage(on) {
      // Other libraries share the channel (prom-client): only drover's types are ours.
      process.on('message', (msg: unknown, handle: unknown) => {
        if (isPrimaryMessage(msg)) on(msg, handle);
      });
    },
    onDisconnect(on) {
      // Node's cluster worker setup registers its own 'disconnect' listener that calls
      // process.exit(0) at once, dropping in-flight requests; `on` replaces it.
      process.removeAllListeners('disconnect');
      process.on('disconnect', on);
    },
    exit(code) {
      // Let queued IPC messages reach the primary before the channel goes away.
      if (process.connected) process.disconnect();
      process.exit(code);
    },
  };
}
