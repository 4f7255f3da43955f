import pino from 'pino';

export type Logger = pino.Logger;

/**
 * One JSON line per event, primary and workers alike, on stdout. Synchronous writes: a worker
 * may be killed right after logging why, and an async buffer would lose exactly that line.
 */
export function createLogger(level: string, bindings: Record<string, unknown>): Logger {
  return pino(
    { level, base: { pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: 1, sync: true }),
  );
}
