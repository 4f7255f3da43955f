import type * as http from 'node:http';
import Fastify from 'fastify';
import underPressure from '@fastify/under-pressure';
import type { WorkerConfig } from '../protocol';

/** Why a request was shed: the label values of `http_requests_shed_total`. */
export const SHED_REASONS = ['event_loop_delay', 'event_loop_utilization', 'heap', 'rss'] as const;
export type ShedReason = (typeof SHED_REASONS)[number];

/** How often the sensor samples; its delay figure is the mean over one sample. */
const SAMPLE_INTERVAL_MS = 250;
const RETRY_AFTER_S = 1;

export interface PressureGate {
  /** Sheds the request if the worker is under pressure: answers 503 and returns true. */
  shed(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  close(): Promise<void>;
}

/**
 * The sensor's delay figure for the last sample. When the loop was blocked through a whole sample
 * the sensor's histogram holds no reading and it reports Infinity, which would shed the next
 * 250 ms of requests at any threshold (measured: after 300 ms blocks, every following /ping got
 * 503 with --shed-loop-delay 5s). All that sample says is that the delay was at least one sample
 * interval: that lower bound is what the threshold is compared with.
 */
function loopDelay(reported: number): number {
  return Number.isFinite(reported) ? reported : SAMPLE_INTERVAL_MS;
}

/**
 * Load shedding with @fastify/under-pressure as the sensor. It is a Fastify plugin: registered on
 * a Fastify instance that never listens, it samples event-loop delay, utilization and memory and
 * exposes `memoryUsage()`; the gate in front of the Express app reads those samples on each
 * request. Under pressure, a request gets 503 + Retry-After + `Connection: close`: the client
 * retries on a new connection, which the primary hands to a less busy worker. The sensor
 * averages each sample, so one isolated stall can slip by: the primary's heartbeat watchdog is
 * the second line.
 */
export async function createPressureGate(shed: WorkerConfig['shed'], onShed: (reason: ShedReason) => void): Promise<PressureGate | undefined> {
  const enabled = shed.loopDelayMs > 0 || shed.utilization < 1 || shed.heapBytes > 0 || shed.rssBytes > 0;
  if (!enabled) return undefined;
  const sensor = Fastify({ logger: false });
  await sensor.register(underPressure, {
    maxEventLoopDelay: shed.loopDelayMs,
    maxEventLoopUtilization: shed.utilization < 1 ? shed.utilization : 0,
    maxHeapUsedBytes: shed.heapBytes,
    maxRssBytes: shed.rssBytes,
    sampleInterval: SAMPLE_INTERVAL_MS,
    eventLoopUtilizationMode: 'interval',
  } as never);
  await sensor.ready();
  const usage = () => (sensor as unknown as { memoryUsage(): { eventLoopDelay: number; eventLoopUtilized: number; heapUsed: number; rssBytes: number } }).memoryUsage();
  const reasonNow = (): ShedReason | undefined => {
    const m = usage();
    if (shed.loopDelayMs > 0 && loopDelay(m.eventLoopDelay) > shed.loopDelayMs) return 'event_loop_delay';
    if (shed.utilization < 1 && m.eventLoopUtilized > shed.utilization) return 'event_loop_utilization';
    if (shed.heapBytes > 0 && m.heapUsed > shed.heapBytes) return 'heap';
    if (shed.rssBytes > 0 && m.rssBytes > shed.rssBytes) return 'rss';
    return undefined;
  };
  return {
    shed(req, res) {
      const reason = reasonNow();
      if (!reason) return false;
      res.setHeader('Connection', 'close');
      const url = req.url ?? '/';
      if (shed.exempt.some((prefix) => url.startsWith(prefix))) return false;
      onShed(reason);
      const body = JSON.stringify({ error: { code: 'OVERLOADED', message: 'the server is overloaded; retry shortly', reason } });
      res.writeHead(503, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'retry-after': String(RETRY_AFTER_S),
      });
      res.end(body);
      return true;
    },
    close: () => sensor.close(),
  };
}
