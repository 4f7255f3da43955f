/**
 * The bundled demo app: what `npm start` serves when no app is given. Each route reproduces one
 * way a Node service behaves under load, so drover's supervision can be seen and tested.
 */
import express, { type Request, type Response } from 'express';

const MAX_MS = 600_000;

function msParam(req: Request, res: Response): number | undefined {
  const raw = req.query.ms ?? '1000';
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || Number(raw) > MAX_MS) {
    res.status(400).json({ error: `ms must be a whole number of milliseconds from 0 to ${MAX_MS}` });
    return undefined;
  }
  return Number(raw);
}

export function createDemoApp(): express.Express {
  const app = express();

  /** The small request: what probes and latency benchmarks hit. */
  app.get('/ping', (_req, res) => {
    res.json({ ok: true, pid: process.pid, worker: process.env.DROVER_WORKER_SLOT ?? null });
  });

  /** Async wait: the loop stays free, other requests are unaffected. */
  app.get('/slow', (req, res) => {
    const ms = msParam(req, res);
    if (ms === undefined) return;
    const timer = setTimeout(() => res.json({ ok: true, pid: process.pid, waitedMs: ms }), ms);
    res.on('close', () => clearTimeout(timer));
  });

  /** Busy loop: holds the worker's event loop (a stuck worker, as the watchdog sees it). */
  app.get('/block', (req, res) => {
    const ms = msParam(req, res);
    if (ms === undefined) return;
    const until = Date.now() + ms;
    while (Date.now() < until) {
      // spin: nothing else runs on this worker meanwhile
    }
    res.json({ ok: true, pid: process.pid, blockedMs: ms });
  });

  /** Crashes the worker from outside the request's promise chain, as a real bug would. */
  app.get('/crash', (_req, res) => {
    res.status(500).json({ error: 'crashing on purpose', pid: process.pid });
    setImmediate(() => {
      throw new Error('crash requested through GET /crash');
    });
  });

  return app;
}

export default createDemoApp;
