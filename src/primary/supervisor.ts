import cluster, { type Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { ExitCode } from '../errors';
import { LoopDelay } from '../loop-delay';
import type { Logger } from '../log';
import type { DroverOptions } from '../options';
import { PROTOCOL_VERSION, WORKER_CONFIG_ENV, isWorkerMessage, type WorkerToPrimary } from '../protocol';
import { respawnDelay } from './backoff';
import { pickRecycle } from './recycle';
import { RollingReload } from './reload';
import type { Dispatcher } from './dispatcher';
import { logStall } from './stall-report';
import { workerConfig } from './worker-config';
import { WorkerHandle, type ExitReason } from './worker-handle';

export type SupervisorPhase = 'starting' | 'running' | 'shutting-down' | 'stopped';

interface SlotState {
  /** Consecutive crashes after listening; reset by a long enough uptime. */
  crashes: number;
  nextSpawnAt: number;
}


const TICK_MS = 100;
/** A worker's own SIGTERM/SIGINT is acted on only if the primary was not signalled meanwhile. */
const SIGNAL_SETTLE_MS = 1000;

/**
 * Signal and event handlers only record what happened; `tick()` compares what is with what should
 * be and acts (gunicorn's arbiter loop, Puma's cluster). Replacing a worker is always "start the
 * new one, then retire the old one": stall, recycle and rolling reload share that path.
 *
 * Events: 'ready' (every slot listening for the first time), 'exit' (code) once all is stopped,
 * 'worker-metrics' (handle, id, metrics) for each snapshot, 'worker-gone' (handle) after an exit.
 */
export class Supervisor extends EventEmitter {
  phase: SupervisorPhase = 'starting';
  generation = 1;
  readonly handles: WorkerHandle[] = [];
  readonly slots: SlotState[];
  /** Worker exits by reason since start (crash, stalled, reload, ...). */
  readonly exits: Record<ExitReason, number> = {
    crash: 0, stalled: 0, 'boot-timeout': 0, 'app-error': 0, reload: 0, shutdown: 0, recycle: 0, memory: 0, 'max-requests': 0,
  };
  /** Drains started, by reason. */
  readonly drains: Record<string, number> = { reload: 0, recycle: 0, memory: 0, 'max-requests': 0, shutdown: 0 };
  readonly reloads: RollingReload;
  /** The primary's own loop delay, read from the tick timer's lateness (src/loop-delay.ts). */
  readonly loopDelay = new LoopDelay();
  private bootFailures = 0;
  private exitCode: number = ExitCode.OK;
  private timer: NodeJS.Timeout | undefined;
  private tickQueued = false;

  constructor(
    readonly opts: DroverOptions,
    private readonly dispatcher: Dispatcher,
    private readonly runtimeDir: string,
    private readonly log: Logger,
  ) {
    super();
    this.slots = Array.from({ length: opts.workers }, () => ({ crashes: 0, nextSpawnAt: 0 }));
    this.reloads = new RollingReload(log);
  }

  start(): void {
    this.timer = setInterval(() => {
      this.loopDelay.sample(performance.now(), TICK_MS);
      this.tick();
    }, TICK_MS);
    this.tick();
  }

  /** Readiness: some worker serves with a heartbeat younger than the stall timeout. */
  isReady(now = performance.now()): boolean {
    if (this.phase !== 'running') return false;
    return this.handles.some((h) => h.serving && h.beatAge(now) <= this.opts.workerTimeoutMs);
  }

  requestReload(source: string): { accepted: boolean; reason?: string } {
    if (this.phase !== 'running') return { accepted: false, reason: `drover is ${this.phase}` };
    const r = this.reloads.start(this.generation + 1, source);
    if (r.accepted) {
      this.generation++;
      this.schedule();
    }
    return r;
  }

  shutdown(code: number, reason: string): void {
    if (this.phase === 'shutting-down' || this.phase === 'stopped') return;
    this.exitCode = code;
    this.phase = 'shutting-down';
    this.log.info({ reason, shutdownDelayMs: this.opts.shutdownDelayMs }, 'shutting down');
    // Readiness is already false (phase); keep serving through the delay so a load balancer
    // can take us out of rotation before connections are refused.
    setTimeout(() => {
      this.dispatcher.close();
      this.log.info({ workers: this.handles.length }, 'draining workers');
      this.schedule();
    }, this.opts.shutdownDelayMs).unref();
  }

  /** Second signal during drain: stop now. */
  forceStop(): void {
    this.log.warn('second stop signal: killing workers without waiting for drain');
    this.exitCode = ExitCode.FORCED_STOP;
    for (const h of this.handles) h.worker.process.kill('SIGKILL');
    if (this.handles.length === 0) this.finish();
  }

  private schedule(): void {
    if (this.tickQueued) return;
    this.tickQueued = true;
    setImmediate(() => {
      this.tickQueued = false;
      this.tick();
    });
  }

  // ---- the reconcile step -------------------------------------------------------------

  private tick(): void {
    if (this.phase === 'stopped') return;
    const now = performance.now();
    if (this.phase === 'shutting-down') return this.tickShutdown(now);
    const stalled: WorkerHandle[] = [];
    for (const h of this.handles) {
      if (h.phase === 'listening' && h.beatAge(now) > this.opts.workerTimeoutMs) {
        this.onStall(h, now);
        stalled.push(h);
      } else if (h.phase === 'booting' && now - h.forkedAt > this.opts.bootTimeoutMs) {
        this.log.error({ worker: h.slot, wid: h.id, workerPid: h.pid, bootTimeoutMs: this.opts.bootTimeoutMs }, 'worker did not listen in time; killing it');
        this.replacementFailed(h, `new worker did not listen within ${this.opts.bootTimeoutMs}ms`);
        this.kill(h, 'boot-timeout');
      }
    }
    for (const h of this.handles) {
      if (h.signalledAt !== undefined && now - h.signalledAt >= SIGNAL_SETTLE_MS && h.phase === 'listening' && !h.retiring) {
        this.log.info({ worker: h.slot, workerPid: h.pid }, 'worker was signalled; replacing it');
        h.retiring = 'recycle';
      }
    }
    this.reloads.step(this.handles);
    const recycle = pickRecycle(this.handles, { maxRssBytes: this.opts.maxMemoryMb * 2 ** 20 }, this.reloads.active);
    if (recycle) {
      this.log.info({ worker: recycle.h.slot, workerPid: recycle.h.pid, reason: recycle.reason, ...recycle.detail }, 'recycling worker');
      recycle.h.retiring = recycle.reason;
    }
    for (let slot = 0; slot < this.slots.length; slot++) {
      const s = this.slots[slot]!;
      const covered = this.handles.some(
        (h) => h.slot === slot && (h.phase === 'booting' || (h.phase === 'listening' && !h.retiring)),
      );
      if (!covered && now >= s.nextSpawnAt) this.fork(slot, now);
    }
    // Replacements of stalled workers were forked above: capacity first, then the kill.
    for (const h of stalled) this.kill(h, 'stalled');
    this.dispatcher.flushQueue();
    this.dispatcher.pace.tick(now);
  }

  private tickShutdown(now: number): void {
    if (!this.dispatcher.isClosed) return;
    for (const h of this.handles) {
      if (h.phase === 'listening') this.drain(h, 'shutdown', now);
      else if (h.phase === 'booting') this.kill(h, 'shutdown');
    }
    if (this.handles.length === 0) this.finish();
  }

  /**
   * A worker that was to replace another failed to come up (exited, timed out, refused): keep the
   * one it was meant to replace, and stop the reload. Called as soon as the failure is known, so
   * the tick does not fork yet another replacement meanwhile.
   */
  private replacementFailed(h: WorkerHandle, why: string): void {
    if (!this.handles.some((x) => x !== h && x.slot === h.slot && x.retiring)) return;
    for (const x of this.handles) if (x.slot === h.slot && x.retiring && x.retiring !== 'reload') x.retiring = undefined;
    this.reloads.abort(this.handles, why);
  }

  // ---- actions ------------------------------------------------------------------------

  private fork(slot: number, now: number): void {
    const config = workerConfig(this.opts, slot, this.generation, this.runtimeDir, this.dispatcher.pace.intervalMs);
    const worker = cluster.fork({ [WORKER_CONFIG_ENV]: JSON.stringify(config) });
    const h = new WorkerHandle(worker, slot, this.generation, now);
    if (this.opts.maxRequests > 0) h.requestLimit = this.opts.maxRequests + Math.floor(Math.random() * (this.opts.maxRequestsJitter + 1));
    this.handles.push(h);
    worker.on('message', (msg: unknown) => {
      if (isWorkerMessage(msg)) this.onMessage(h, msg);
    });
    worker.on('exit', (code: number | null, signal: string | null) => this.onExit(h, code, signal));
    worker.on('error', (err: Error) => this.log.debug({ worker: slot, err: err.message }, 'ipc error'));
    this.log.info({ worker: slot, wid: h.id, workerPid: h.pid, gen: h.generation }, 'worker spawned');
  }

  private drain(h: WorkerHandle, reason: ExitReason, now: number): void {
    this.drains[reason] = (this.drains[reason] ?? 0) + 1;
    this.log.info({ worker: h.slot, wid: h.id, workerPid: h.pid, reason }, 'worker draining');
    h.drain(reason, now, this.opts, () => this.log.error({ worker: h.slot, workerPid: h.pid }, 'worker overran its drain deadline; SIGKILL'));
  }

  private kill(h: WorkerHandle, reason: ExitReason): void {
    h.terminate(reason, this.opts.killGraceMs);
  }

  /** Marks a stalled worker (no traffic, slot uncovered) and logs where its loop is stuck. */
  private onStall(h: WorkerHandle, now: number): void {
    h.phase = 'stalling';
    h.stopReason = 'stalled';
    logStall(this.log, this.runtimeDir, h, now);
  }

  // ---- events (record, then schedule a tick) ---------------------------------------------

  private onMessage(h: WorkerHandle, msg: WorkerToPrimary): void {
    const now = performance.now();
    switch (msg.type) {
      case 'drover:heartbeat':
        h.onBeat(msg, now);
        return;
      case 'drover:adopted':
        this.dispatcher.onAdopted(h, msg.id);
        return;
      case 'drover:hello':
        h.lastBeatAt = now;
        if (msg.protocol !== PROTOCOL_VERSION) {
          this.log.error({ worker: h.slot, workerPid: h.pid, workerProtocol: msg.protocol, primaryProtocol: PROTOCOL_VERSION }, 'worker speaks another protocol version (forked from newer files?); refusing it');
          h.worker.send({ type: 'drover:protocol-reject', expected: PROTOCOL_VERSION });
          h.appError = 'protocol version mismatch';
          this.replacementFailed(h, h.appError);
          this.kill(h, 'app-error');
        }
        return;
      case 'drover:listening':
        if (h.phase !== 'booting') return;
        h.phase = 'listening';
        h.listeningAt = now;
        h.lastBeatAt = now;
        h.privatePort = msg.privatePort;
        this.bootFailures = 0;
        this.onListening(h, now);
        return;
      case 'drover:app-error':
        h.appError = msg.message;
        return;
      case 'drover:signal':
        // Acted on in tick() after SIGNAL_SETTLE_MS: pm2's tree-kill signals workers a moment
        // before the primary, and replacing workers that are about to be drained is wasted work.
        h.signalledAt ??= now;
        return;
      case 'drover:metrics':
        this.emit('worker-metrics', h, msg.id, msg.metrics);
        return;
      case 'drover:blocks':
        // Evidence for /status only: a blocking route is the app's to fix, not a reason to act.
        h.blocks = msg.routes;
        return;
      case 'drover:drained':
        return;
    }
  }

  private onListening(h: WorkerHandle, now: number): void {
    this.log.info({ worker: h.slot, wid: h.id, workerPid: h.pid, gen: h.generation, bootMs: Math.round(now - h.forkedAt) }, 'worker listening');
    // Its slot's retiring or stalled predecessor can go now that the replacement serves.
    for (const old of this.handles) {
      if (old === h || old.slot !== h.slot) continue;
      if (old.phase === 'listening' && old.retiring) {
        if (old.retiring === 'reload') this.reloads.replaced++;
        this.drain(old, old.retiring, now);
      }
    }
    if (this.phase === 'starting' && this.slots.every((_, slot) => this.handles.some((x) => x.slot === slot && x.phase === 'listening'))) {
      this.phase = 'running';
      this.log.info({ workers: this.slots.length }, 'drover ready');
      this.emit('ready');
    }
    this.dispatcher.flushQueue();
    this.schedule();
  }

  private onExit(h: WorkerHandle, code: number | null, signal: string | null): void {
    const now = performance.now();
    const wasBooting = h.phase === 'booting' || h.listeningAt === undefined;
    clearTimeout(h.killTimer);
    h.phase = 'stopped';
    this.handles.splice(this.handles.indexOf(h), 1);
    this.dispatcher.onWorkerGone(h);
    this.emit('worker-gone', h);
    const reason: ExitReason = h.appError ? 'app-error' : (h.stopReason ?? 'crash');
    this.exits[reason]++;
    const level = h.stopReason && h.stopReason !== 'stalled' && h.stopReason !== 'boot-timeout' ? 'info' : 'error';
    this.log[level]({ worker: h.slot, wid: h.id, workerPid: h.pid, code, signal, reason }, 'worker exited');

    if (this.phase === 'shutting-down') return this.schedule();
    if (wasBooting) this.replacementFailed(h, h.appError ?? `new worker exited during boot (code ${code}, signal ${signal})`);
    if (reason === 'app-error' && !this.handles.some((x) => x.serving)) {
      this.log.fatal({ app: this.opts.app, error: h.appError }, 'the app cannot be loaded; stopping instead of respawning');
      return this.shutdown(ExitCode.APP_LOAD_ERROR, 'app load error');
    }
    const slot = this.slots[h.slot]!;
    if (wasBooting && reason !== 'shutdown') {
      this.bootFailures++;
      if (this.bootFailures >= this.opts.maxBootFailures) {
        this.log.fatal({ bootFailures: this.bootFailures }, 'workers keep dying before they listen; stopping (crash loop)');
        return this.shutdown(ExitCode.CRASH_LOOP, 'crash loop');
      }
    }
    if (reason === 'crash' || reason === 'app-error' || reason === 'boot-timeout') {
      const upMs = h.listeningAt === undefined ? 0 : now - h.listeningAt;
      slot.crashes = upMs >= this.opts.restartResetMs ? 1 : slot.crashes + 1;
      const delay = respawnDelay(slot.crashes, this.opts.restartDelayMs, this.opts.restartDelayMaxMs);
      slot.nextSpawnAt = now + delay;
      if (delay > 0) this.log.warn({ worker: h.slot, crashes: slot.crashes, delayMs: delay }, 'respawn delayed (backoff)');
    }
    this.schedule();
  }

  private finish(): void {
    if (this.phase === 'stopped') return;
    this.phase = 'stopped';
    clearInterval(this.timer);
    this.emit('exit', this.exitCode);
  }
}
