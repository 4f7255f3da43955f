import cluster from 'node:cluster';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { ExitCode } from '../errors';
import { LoopDelay } from '../loop-delay';
import type { Logger } from '../log';
import type { DroverOptions } from '../options';
import { PROTOCOL_VERSION, WORKER_CONFIG_ENV, isWorkerMessage, type WorkerToPrimary } from '../protocol';
import { SlotState } from './backoff';
import { pickRecycle } from './recycle';
import { RollingReload } from './reload';
import type { Dispatcher } from './dispatcher';
import { logStall } from './stall-report';
import { workerConfig } from './worker-config';
import { WorkerHandle } from './worker-handle';
import {
  DRAIN_REASONS, EXIT_REASONS, overdue, step,
  type DrainReason, type ExitReason, type LifeAction, type LifeEvent,
} from './worker-lifecycle';

export type SupervisorPhase = 'starting' | 'running' | 'shutting-down' | 'stopped';

const TICK_MS = 100;
/** The tick while the pace is asleep (src/primary/beat-pace.ts). */
const SLEEP_TICK_MS = 1000;

const zeros = <K extends string>(keys: readonly K[]) => Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;

/**
 * Event handlers only record: they move the worker's lifecycle (src/primary/worker-lifecycle.ts,
 * pure) and queue the actions its transition asks for. `tick()` carries those out, then compares
 * what is with what should be and acts (gunicorn's arbiter loop, Puma's cluster): overdue boots,
 * heartbeats and signals, reload and recycle steps, and a worker for every uncovered slot.
 * Replacing a worker is always "start the new one, then retire the old one": stall, recycle and
 * rolling reload share that path.
 *
 * Handlers act at once only where nothing is decided: a socket's ack goes to the dispatcher (the
 * primary's copy of the connection waits for it), a metrics snapshot to the store (a scrape waits
 * for it), heartbeats onto the handle. A state change is recorded at once, so no connection is
 * handed to a worker the lifecycle has taken off duty while the tick is pending.
 *
 * Events: 'ready' (every slot listening for the first time), 'exit' (code) once all is stopped,
 * 'worker-metrics' (handle, id, metrics) for each snapshot, 'worker-gone' (handle) after an exit.
 */
export class Supervisor extends EventEmitter {
  phase: SupervisorPhase = 'starting';
  generation = 1;
  readonly handles: WorkerHandle[] = [];
  readonly slots: SlotState[];
  /** Worker exits by reason since start. */
  readonly exits: Record<ExitReason, number> = zeros(EXIT_REASONS);
  /** Drains started, by reason. */
  readonly drains: Record<DrainReason, number> = zeros(DRAIN_REASONS);
  readonly reloads: RollingReload;
  /** The primary's own loop delay, read from the tick timer's lateness (src/loop-delay.ts). */
  readonly loopDelay = new LoopDelay();
  private bootFailures = 0;
  private exitCode: number = ExitCode.OK;
  private timer: NodeJS.Timeout | undefined;
  private tickMs = TICK_MS;
  /** Requests the workers had served at the last tick (their beats' sum): traffic for the pace. */
  private requestsAtTick = 0;
  private tickQueued = false;
  /** What the lifecycle asked for since the last tick, in order. */
  private readonly todo: { h: WorkerHandle; a: LifeAction }[] = [];

  constructor(
    readonly opts: DroverOptions,
    private readonly dispatcher: Dispatcher,
    private readonly runtimeDir: string,
    private readonly log: Logger,
  ) {
    super();
    this.slots = Array.from({ length: opts.workers }, () => new SlotState());
    this.reloads = new RollingReload(log, opts.reloadDrains);
  }

  start(): void {
    this.armTick(TICK_MS);
    this.tick();
  }

  /**
   * The periodic tick, every TICK_MS, or SLEEP_TICK_MS while the pace is asleep (no traffic: its
   * timeouts then run up to a second late, and each wake-up costs CPU for nothing; issue 19).
   * `wake()` brings it back at once when the first connection after a sleep arrives.
   */
  private armTick(ms: number): void {
    clearTimeout(this.timer);
    this.tickMs = ms;
    this.timer = setTimeout(() => {
      this.loopDelay.sample(performance.now(), ms);
      this.tick();
      if (this.phase !== 'stopped') this.armTick(this.dispatcher.pace.asleep ? SLEEP_TICK_MS : TICK_MS);
    }, ms);
  }

  /** The dispatcher woke the pace (a connection after a sleep): tick at the awake period again. */
  wake(): void {
    if (this.tickMs !== TICK_MS) this.armTick(TICK_MS);
  }

  /** Readiness: some worker serves with a heartbeat younger than the stall timeout. */
  isReady(now = performance.now()): boolean {
    if (this.phase !== 'running') return false;
    return this.handles.some((h) => h.serving && h.silentFor(now) <= this.opts.workerTimeoutMs);
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
    for (const h of this.handles) this.record(h, { kind: 'force' });
    if (this.handles.length === 0) this.finish();
    else this.schedule();
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
    this.act(now);
    if (this.phase === 'shutting-down') return this.tickShutdown(now);
    for (const h of this.handles) {
      const e = overdue(h.life, { now, forkedAt: h.forkedAt, lastBeatAt: now - h.silentFor(now) }, this.opts);
      if (e) this.record(h, e);
    }
    const old = this.reloads.step(this.handles);
    if (old) this.record(old, { kind: 'retire', reason: 'reload' });
    const recycle = pickRecycle(this.handles, { maxRssBytes: this.opts.maxMemoryMb * 2 ** 20 }, this.reloads.active);
    if (recycle) {
      this.log.info({ worker: recycle.h.slot, workerPid: recycle.h.pid, reason: recycle.reason, ...recycle.detail }, 'recycling worker');
      this.record(recycle.h, { kind: 'retire', reason: recycle.reason });
    }
    this.act(now);
    for (let slot = 0; slot < this.slots.length; slot++) this.cover(slot, now);
    this.dispatcher.flushQueue();
    this.dispatcher.pace.tick(now, this.traffic());
  }

  /** Whether any worker served or holds a request since the last tick (keep-alive traffic keeps drover awake). */
  private traffic(): boolean {
    let requests = 0;
    let inFlight = false;
    for (const h of this.handles) {
      requests += h.beat?.requests ?? 0;
      if ((h.beat?.inFlight ?? 0) > 0) inFlight = true;
    }
    const served = requests !== this.requestsAtTick;
    this.requestsAtTick = requests;
    return served || inFlight;
  }

  private tickShutdown(now: number): void {
    if (!this.dispatcher.isClosed) return;
    // Serving workers drain, booting ones are stopped; the others are on their way out already.
    for (const h of this.handles) this.record(h, { kind: 'shutdown' });
    this.act(now);
    if (this.handles.length === 0) this.finish();
  }

  /** A slot with no booting or listening worker gets one, unless its respawn is backing off. */
  private cover(slot: number, now: number): void {
    const covered = this.handles.some((h) => h.slot === slot && (h.state === 'booting' || h.state === 'listening'));
    if (!covered && now >= this.slots[slot]!.nextSpawnAt) this.fork(slot, now);
  }

  /**
   * A worker that was to replace another failed to come up (exited, timed out, refused): keep the
   * one it was meant to replace, and stop the reload. Runs before the tick covers slots, so no
   * other replacement is forked meanwhile.
   */
  private replacementFailed(h: WorkerHandle, why: string): void {
    if (!this.handles.some((x) => x !== h && x.slot === h.slot && x.state === 'retiring')) return;
    this.reloads.abort(why);
    for (const x of this.handles) {
      if (x.state === 'retiring' && (x.slot === h.slot || x.life.reason === 'reload')) this.record(x, { kind: 'keep' });
    }
  }

  // ---- the lifecycle: record an event, carry out its actions ----------------------------

  /** Moves the worker's lifecycle now; its actions wait for `act()`. */
  private record(h: WorkerHandle, e: LifeEvent): void {
    const { life, actions } = step(h.life, e, this.opts);
    h.life = life;
    for (const a of actions) this.todo.push({ h, a });
  }

  /** For handlers and timers: record, and let the next tick act. */
  private feed(h: WorkerHandle, e: LifeEvent): void {
    this.record(h, e);
    this.schedule();
  }

  private act(now: number): void {
    // An action may record more events (a listening worker's predecessor drains): they queue behind.
    for (let next = this.todo.shift(); next; next = this.todo.shift()) this.perform(next.h, next.a, now);
  }

  private perform(h: WorkerHandle, a: LifeAction, now: number): void {
    const who = { worker: h.slot, wid: h.id, workerPid: h.pid };
    switch (a.kind) {
      case 'log':
        return this.log[a.level]({ ...who, ...a.fields }, a.msg);
      case 'log-stall':
        return logStall(this.log, this.runtimeDir, h, now);
      case 'reject-protocol':
        return void h.worker.send({ type: 'drover:protocol-reject', expected: PROTOCOL_VERSION });
      case 'respawn':
        return this.cover(h.slot, now);
      case 'kill':
        return void h.worker.process.kill(a.signal);
      case 'drain':
        this.drains[a.reason]++;
        this.log.info({ ...who, reason: a.reason }, 'worker draining');
        return void h.worker.send({ type: 'drover:drain', timeoutMs: this.opts.drainTimeoutMs, idleGraceMs: this.opts.drainIdleGraceMs ?? this.opts.keepAliveTimeoutMs });
      case 'deadline':
        clearTimeout(h.deadline);
        h.deadline = setTimeout(() => this.feed(h, { kind: 'deadline' }), a.ms);
        return;
      case 'serving':
        return this.serving(h);
      case 'exited':
        clearTimeout(h.deadline);
        this.handles.splice(this.handles.indexOf(h), 1);
        this.dispatcher.onWorkerGone(h);
        this.emit('worker-gone', h);
        this.exits[a.reason]++;
        return this.log[a.level]({ ...who, code: a.code, signal: a.signal, reason: a.reason }, 'worker exited');
    }
    // What an exit or a failed boot means for the fleet; nothing while drover stops anyway.
    if (this.phase === 'shutting-down' || this.phase === 'stopped') return;
    switch (a.kind) {
      case 'replacement-failed':
        return this.replacementFailed(h, a.why);
      case 'app-failed':
        if (this.handles.some((x) => x.serving)) return;
        this.log.fatal({ app: this.opts.app, error: h.life.appError }, 'the app cannot be loaded; stopping instead of respawning');
        return this.shutdown(ExitCode.APP_LOAD_ERROR, 'app load error');
      case 'boot-failed':
        if (++this.bootFailures < this.opts.maxBootFailures) return;
        this.log.fatal({ bootFailures: this.bootFailures }, 'workers keep dying before they listen; stopping (crash loop)');
        return this.shutdown(ExitCode.CRASH_LOOP, 'crash loop');
      case 'backoff': {
        const slot = this.slots[h.slot]!;
        const delay = slot.failed(now, h.listeningAt === undefined ? 0 : now - h.listeningAt, this.opts);
        if (delay > 0) this.log.warn({ worker: h.slot, crashes: slot.crashes, delayMs: delay }, 'respawn delayed (backoff)');
      }
    }
  }

  /** A worker listens: its slot's retiring predecessor drains, and drover may now be ready. */
  private serving(h: WorkerHandle): void {
    this.bootFailures = 0;
    const bootMs = Math.round((h.listeningAt ?? h.forkedAt) - h.forkedAt);
    this.log.info({ worker: h.slot, wid: h.id, workerPid: h.pid, gen: h.generation, bootMs }, 'worker listening');
    for (const old of this.handles) {
      if (old === h || old.slot !== h.slot || old.state !== 'retiring') continue;
      if (old.life.reason === 'reload') this.reloads.replaced++;
      this.record(old, { kind: 'replaced' });
    }
    const up = (slot: number) => this.handles.some((x) => x.slot === slot && (x.state === 'listening' || x.state === 'retiring'));
    if (this.phase === 'starting' && this.slots.every((_, slot) => up(slot))) {
      this.phase = 'running';
      this.log.info({ workers: this.slots.length }, 'drover ready');
      this.emit('ready');
    }
    this.dispatcher.flushQueue();
  }

  private fork(slot: number, now: number): void {
    const config = workerConfig(this.opts, slot, this.generation, this.runtimeDir, this.dispatcher.pace.intervalMs, this.dispatcher.pace.reportMs);
    const worker = cluster.fork({ [WORKER_CONFIG_ENV]: JSON.stringify(config) });
    const h = new WorkerHandle(worker, slot, this.generation, now);
    if (this.opts.maxRequests > 0) h.requestLimit = this.opts.maxRequests + Math.floor(Math.random() * (this.opts.maxRequestsJitter + 1));
    this.handles.push(h);
    worker.on('message', (msg: unknown) => isWorkerMessage(msg) && this.onMessage(h, msg));
    worker.on('exit', (code: number | null, signal: string | null) => this.feed(h, { kind: 'exit', code, signal }));
    worker.on('error', (err: Error) => this.log.debug({ worker: slot, err: err.message }, 'ipc error'));
    this.log.info({ worker: slot, wid: h.id, workerPid: h.pid, gen: h.generation }, 'worker spawned');
  }

  // ---- events (record, then schedule a tick) ---------------------------------------------

  private onMessage(h: WorkerHandle, msg: WorkerToPrimary): void {
    // Replies go to whoever asked; everything else is the handle's to record and the machine's to judge.
    if (msg.type === 'drover:adopted') return this.dispatcher.onAdopted(h, msg);
    if (msg.type === 'drover:metrics') return void this.emit('worker-metrics', h, msg.id, msg.metrics);
    const e = h.note(msg, performance.now());
    if (e) this.feed(h, e);
    // Connections held while the workers woke up go out once they all beat at the new pace.
    if (msg.type === 'drover:heartbeat') this.dispatcher.onBeat();
  }

  private finish(): void {
    if (this.phase === 'stopped') return;
    this.phase = 'stopped';
    clearTimeout(this.timer);
    this.emit('exit', this.exitCode);
  }
}
