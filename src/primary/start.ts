import cluster from 'node:cluster';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExitCode } from '../errors';
import { createLogger } from '../log';
import type { DroverOptions } from '../options';
import { ControlServer, VERSION } from './control-server';
import { QUIET_MS, SLEEP_AFTER_MS, sleepIntervalMs } from './beat-pace';
import { Dispatcher } from './dispatcher';
import { createScraper } from './scrape';
import { Supervisor } from './supervisor';
import { typeScriptExecArgv } from './ts-loader';

/** Connections held while no worker exists (all crashed or booting). */
const MAX_QUEUED_CONNECTIONS = 1024;
const QUEUE_TIMEOUT_MS = 10_000;

/** Runs the primary until it stops; exits the process with the documented code. */
export async function startPrimary(opts: DroverOptions): Promise<void> {
  const log = createLogger(opts.logLevel, { role: 'primary' });
  // Before anything is created: a TypeScript app without tsx is a usage error (exit 2).
  const tsArgv = typeScriptExecArgv(opts.app, [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(' ')]);
  const runtimeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-'));
  const cleanup = () => fs.rmSync(runtimeDir, { recursive: true, force: true });

  // Under pm2 fork mode process.argv[1] is pm2's wrapper: always name the worker entry.
  cluster.setupPrimary({
    exec: path.join(__dirname, '..', 'worker', 'main.js'),
    execArgv: [...workerExecArgv(process.execArgv, opts), ...tsArgv],
    args: [],
  });

  let supervisor: Supervisor | undefined;
  let onHandoff: ((s: number) => void) | undefined;
  const dispatcher = new Dispatcher(
    {
      mode: opts.dispatch,
      // --dispatch-freshness is a heartbeat age at the fast pace; beats announce their interval,
      // so what carries over to any pace is the lateness it allows beyond one interval.
      lateGraceMs: opts.dispatchFreshnessMs - opts.heartbeatIntervalMs,
      pace: {
        fastMs: opts.heartbeatIntervalMs,
        idleMs: opts.heartbeatIdleIntervalMs,
        sleepMs: sleepIntervalMs(opts),
        quietMs: QUIET_MS,
        sleepAfterMs: SLEEP_AFTER_MS,
      },
      maxQueued: MAX_QUEUED_CONNECTIONS,
      queueTimeoutMs: QUEUE_TIMEOUT_MS,
      onHandoff: (s) => onHandoff?.(s),
      onWake: () => supervisor?.wake(),
    },
    () => supervisor?.handles ?? [],
    log,
    opts.workers,
  );
  const sup = new Supervisor(opts, dispatcher, runtimeDir, log);
  supervisor = sup;
  const scraper = createScraper(sup, dispatcher, VERSION);
  onHandoff = (s) => scraper.metrics.dispatchWait.observe(s);
  const control = new ControlServer(sup, dispatcher, opts.controlToken, log, scraper.scrape, opts.metricsAuth === 'on');
  scraper.metrics.countUnauthorized(() => control.unauthorized);

  const fail = (what: string, err: unknown): never => {
    const e = err as NodeJS.ErrnoException;
    log.fatal({ code: e.code, err: e.message }, `cannot listen on the ${what}`);
    process.stderr.write(`drover: cannot listen on the ${what}: ${e.message}\n`);
    cleanup();
    process.exit(ExitCode.LISTEN_ERROR);
  };
  let port: number;
  let controlPort: number;
  try {
    port = await dispatcher.listen(opts.port, opts.host);
  } catch (err) {
    return fail(`app port ${opts.host}:${opts.port}`, err);
  }
  try {
    controlPort = await control.listen(opts.controlPort, opts.controlHost);
  } catch (err) {
    return fail(`control port ${opts.controlHost}:${opts.controlPort}`, err);
  }
  control.appPort = port;

  log.info(
    {
      version: VERSION, port, host: opts.host, controlPort, controlHost: opts.controlHost,
      workers: opts.workers, workersSource: opts.workersSource, workersDetail: opts.workersDetail, dispatch: opts.dispatch, app: opts.app,
    },
    'drover listening',
  );

  sup.on('ready', () => {
    // pm2 `wait_ready`: the app is up once every worker listens.
    if (process.send) process.send('ready');
    // Test-only fault injection: proves the unexpected-exception policy end to end.
    if (process.env.DROVER_TEST_FAULT === 'primary-throw') {
      setImmediate(() => {
        throw new Error('fault injected by DROVER_TEST_FAULT=primary-throw');
      });
    }
  });
  sup.on('exit', (code: number) => {
    control.close();
    cleanup();
    log.info({ code }, 'drover stopped');
    process.exit(code);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (sup.phase === 'shutting-down') sup.forceStop();
      else sup.shutdown(ExitCode.OK, signal);
    });
  }
  process.on('SIGHUP', () => {
    const r = sup.requestReload('SIGHUP');
    if (!r.accepted) log.warn({ reason: r.reason }, 'reload request ignored');
  });
  // An unexpected exception in the primary leaves it in an unknown state: drain the workers and
  // exit with a code that makes pm2 or Kubernetes start a fresh one. Never leave workers headless.
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'unexpected exception in the primary; draining workers and exiting');
    if (sup.phase === 'shutting-down' || sup.phase === 'stopped') {
      for (const h of sup.handles) h.worker.process.kill('SIGKILL');
      cleanup();
      process.exit(ExitCode.PRIMARY_ERROR);
    }
    sup.shutdown(ExitCode.PRIMARY_ERROR, 'uncaught exception');
  });

  sup.start();
}

/** The primary's own node flags pass through to workers, plus drover's per-worker runtime options. */
export function workerExecArgv(own: readonly string[], opts: Pick<DroverOptions, 'sourceMaps' | 'maxHeapMb'>): string[] {
  const out = own.filter((a) => !(opts.maxHeapMb !== undefined && a.startsWith('--max-old-space-size')));
  if (opts.sourceMaps === 'on' && !out.includes('--enable-source-maps')) out.push('--enable-source-maps');
  if (opts.maxHeapMb !== undefined) out.push(`--max-old-space-size=${opts.maxHeapMb}`);
  return out;
}
