import type { DroverOptions } from '../options';
import type { WorkerConfig } from '../protocol';

/** What a worker is told at fork time: the options it needs, in the units it uses. */
export function workerConfig(opts: DroverOptions, slot: number, generation: number, runtimeDir: string, heartbeatIntervalMs: number, heartbeatReportMs?: number): WorkerConfig {
  return {
    slot,
    generation,
    app: opts.app,
    // The current pace (src/primary/beat-pace.ts); later changes come as drover:pace.
    heartbeatIntervalMs,
    heartbeatReportMs,
    // Half the stall timeout: the stack is on disk well before the primary gives up on the worker.
    stackCaptureAfterMs: Math.max(100, Math.floor(opts.workerTimeoutMs / 2)),
    blockThresholdMs: opts.blockThresholdMs,
    runtimeDir,
    logLevel: opts.logLevel,
    metricsIntervalMs: opts.metricsIntervalMs,
    requestMetrics: opts.requestMetrics === 'on',
    shed: {
      loopDelayMs: opts.shedLoopDelayMs,
      utilization: opts.shedUtilization,
      heapBytes: opts.shedHeapMb * 2 ** 20,
      rssBytes: opts.shedRssMb * 2 ** 20,
      exempt: opts.shedExempt,
    },
    maxRequestsPerSocket: opts.maxRequestsPerSocket,
    headersTimeoutMs: opts.headersTimeoutMs,
    requestTimeoutMs: opts.requestTimeoutMs,
    keepAliveTimeoutMs: opts.keepAliveTimeoutMs,
  };
}
