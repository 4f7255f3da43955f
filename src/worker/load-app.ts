import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** What drover needs of the user's app: an Express app is a request listener with `handle`/`set`. */
export type AppHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  set?: (name: string, value: unknown) => unknown;
};

/** Optional exports of the app module that drover calls around the app's life. */
export interface AppHooks {
  /** Awaited before the worker takes traffic (warm caches, open pools). */
  ready?: () => unknown;
  /** Awaited during drain, after in-flight requests finished (close pools, flush queues). */
  shutdown?: () => unknown;
  /**
   * Awaited with the worker's own http.Server before it takes traffic, so WebSocket servers
   * attach to it unchanged (`new WebSocketServer({ server })`, `io.attach(server)`; ADR 0016).
   */
  attach?: (server: import('node:http').Server) => unknown;
}

export interface LoadedApp {
  app: AppHandler;
  hooks: AppHooks;
}

function isExpressApp(x: unknown): x is AppHandler {
  const f = x as { handle?: unknown; use?: unknown } | undefined;
  return typeof x === 'function' && typeof f?.handle === 'function' && typeof f?.use === 'function';
}

async function importModule(file: string): Promise<Record<string, unknown>> {
  // CommonJS apps are loaded with require(): through import(), `module.parent` is unset, and the
  // common `if (!module.parent) app.listen()` guard would then start a stray listener.
  if (!file.endsWith('.mjs')) {
    try {
      return require(file) as Record<string, unknown>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ESM') throw err;
    }
  }
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

/**
 * Load the user's module: its default export (or `module.exports`) is an Express app, or a
 * possibly async factory returning one. Throws an Error with an operator-facing message.
 */
export async function loadApp(file: string): Promise<LoadedApp> {
  const mod = await importModule(path.resolve(file));
  // ESM default, a transpiled `exports.default`, or the CommonJS `module.exports` itself.
  const exported: unknown = mod.default !== undefined ? mod.default : mod;
  let app: unknown = exported;
  if (!isExpressApp(app) && typeof app === 'function') app = await (app as () => unknown)();
  if (!isExpressApp(app)) {
    throw new Error(
      `${file} must export an Express app, or a function returning one (got ${describe(app)}).`,
    );
  }
  const pick = (name: keyof AppHooks) => {
    const fromMod = mod[name];
    const fromDefault = (mod.default as Record<string, unknown> | undefined)?.[name];
    const hook = typeof fromMod === 'function' ? fromMod : fromDefault;
    return typeof hook === 'function' ? (hook as () => unknown) : undefined;
  };
  return { app, hooks: { ready: pick('ready'), shutdown: pick('shutdown'), attach: pick('attach') } };
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (typeof x === 'function') return 'a function that is not an Express app';
  if (typeof x === 'object') return `an object with keys [${Object.keys(x as object).slice(0, 5).join(', ')}]`;
  return typeof x;
}
