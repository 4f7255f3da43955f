import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveModule, type ServedApp } from './adapters';

/** The request listener drover serves the app through; `set` only when it is an Express app. */
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
  /** Which kind of export it was (src/worker/app-kind.ts). */
  kind: ServedApp['kind'];
  hooks: AppHooks;
}

async function importModule(file: string): Promise<Record<string, unknown>> {
  // CommonJS apps are loaded with require(): through import(), `module.parent` is unset, and the
  // common `if (!module.parent) app.listen()` guard would then start a stray listener.
  // .mjs/.mts are ESM by name. An ESM .js with top-level await cannot be require()d even where
  // require(esm) works (Node >= 20.19): ERR_REQUIRE_ASYNC_MODULE falls back to import() too.
  if (!/\.m[jt]s$/.test(file)) {
    try {
      return require(file) as Record<string, unknown>;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ERR_REQUIRE_ESM' && code !== 'ERR_REQUIRE_ASYNC_MODULE') throw err;
    }
  }
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

/**
 * Load the user's module and make its app one request listener: an Express app, a Fastify
 * instance, a request listener, a fetch handler, or a factory returning one (the rule:
 * src/worker/app-kind.ts, ADR 0015). Throws an Error with an operator-facing message.
 */
export async function loadApp(file: string): Promise<LoadedApp> {
  const mod = await importModule(path.resolve(file));
  const served = await serveModule(file, mod);
  const app: AppHandler = served.listener;
  const pick = (name: keyof AppHooks) => {
    // A framework object's own methods are not hooks: Fastify's `ready` is not the module's.
    const from = (x: unknown) => (x === served.framework ? undefined : (x as Record<string, unknown> | undefined)?.[name]);
    const fromMod = from(mod);
    const hook = typeof fromMod === 'function' ? fromMod : from(mod.default);
    return typeof hook === 'function' ? (hook as () => unknown) : undefined;
  };
  return { app, kind: served.kind, hooks: { ready: pick('ready'), shutdown: pick('shutdown') ?? served.close, attach: pick('attach') } };
}
