/**
 * What an app module exports, and which kind of app drover takes it for (ADR 0015). Pure: the
 * decision table is unit-tested with plain values; adapters.ts turns a decision into a listener.
 *
 *   1. A `listener` export is a Node request listener and a `fetch` export a fetch handler,
 *      whatever their shape: the escape hatch when the rules below would read a function wrong.
 *   2. Otherwise the default export (or `module.exports`):
 *      - an Express app (a function with `handle` and `use`): served as is;
 *      - a Fastify instance (`routing`, `ready`, `register`): served through `routing()`;
 *      - an object with a `fetch` method (a Hono app, `{ fetch }`): a fetch handler;
 *      - a function declaring two or more parameters: a request listener `(req, res)`;
 *      - a function declaring none or one: a factory, called once with no arguments; what it
 *        returns (awaited) must be one of the kinds above except another factory.
 *   Anything else is refused with what it is and what drover accepts.
 *
 * Arity is what a function says about itself: a listener needs `res` to answer, so it declares
 * two parameters, and a factory drover calls with none declares at most an optional one. A
 * function can hide its parameters (`(...args)`, defaults), hence the named exports.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export type Listener = (req: IncomingMessage, res: ServerResponse) => unknown;
/** `env` is what @hono/node-server passes as Hono's `c.env`, so Hono apps see the same bindings. */
export type FetchHandler = (request: Request, env: { incoming: IncomingMessage; outgoing: ServerResponse }) => unknown;

/** The part of a Fastify instance drover uses: its own request handling, boot and close. */
export interface FastifyLike {
  routing: Listener;
  ready: () => PromiseLike<unknown>;
  close: () => PromiseLike<unknown>;
}

export type ExpressLike = Listener & { handle: unknown; use: unknown; set?: (name: string, value: unknown) => unknown };

export type AppKind =
  | { kind: 'express'; app: ExpressLike }
  | { kind: 'fastify'; app: FastifyLike }
  | { kind: 'listener'; listener: Listener }
  | { kind: 'fetch'; fetch: FetchHandler }
  | { kind: 'factory'; factory: () => unknown }
  | { kind: 'unservable'; hint: string | undefined };

/** The export names that state the kind outright, in the order they are looked at. */
export const NAMED_EXPORTS = ['listener', 'fetch'] as const;

/** One sentence for refusals: what drover serves (README, "Running your own app"). */
export const ACCEPTED =
  'drover serves an Express app, a Fastify instance, a request listener (a function declaring (req, res)), ' +
  'an object with a fetch(request) method (e.g. a Hono app), a `listener` or `fetch` export, ' +
  'or a factory returning one of these (a function declaring at most one parameter, called once with none)';

type Props = Record<string, unknown>;
const fn = (x: unknown, key: string) => typeof (x as Props | null | undefined)?.[key] === 'function';

export function isExpressApp(x: unknown): x is ExpressLike {
  return typeof x === 'function' && fn(x, 'handle') && fn(x, 'use');
}

export function isFastify(x: unknown): x is FastifyLike {
  return typeof x === 'object' && x !== null && fn(x, 'routing') && fn(x, 'ready') && fn(x, 'register');
}

/** The kind of one exported value (the default export, or what a factory returned). */
export function kindOf(x: unknown): AppKind {
  if (isExpressApp(x)) return { kind: 'express', app: x };
  if (isFastify(x)) return { kind: 'fastify', app: x };
  if (typeof x === 'function') {
    return x.length >= 2 ? { kind: 'listener', listener: x as Listener } : { kind: 'factory', factory: x as () => unknown };
  }
  if (typeof x === 'object' && x !== null && fn(x, 'fetch')) {
    const obj = x as { fetch: FetchHandler };
    // Bound: a `{ fetch() { ... this ... } }` object expects to be its own `this`.
    return { kind: 'fetch', fetch: obj.fetch.bind(obj) };
  }
  return { kind: 'unservable', hint: hintFor(x) };
}

/**
 * The kind a module states: a named export first, else its default export (an ESM default, a
 * transpiled `exports.default`, or `module.exports` itself). `what` names the value for messages.
 */
export function moduleKind(mod: Props): { kind: AppKind; what: string; value: unknown } {
  for (const name of NAMED_EXPORTS) {
    const value = mod[name];
    if (typeof value !== 'function') continue;
    // Called with the module as `this`, as `mod.listener(req, res)` would be.
    const bound = (value as (...a: unknown[]) => unknown).bind(mod);
    const kind: AppKind = name === 'listener' ? { kind: 'listener', listener: bound } : { kind: 'fetch', fetch: bound };
    return { kind, what: `its \`${name}\` export`, value };
  }
  if (mod.default !== undefined) return { kind: kindOf(mod.default), what: 'its default export', value: mod.default };
  // An ESM namespace without a default (only named exports) is not an app, but say what it holds.
  const esm = (mod as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] === 'Module';
  return { kind: kindOf(mod), what: esm ? 'it has no default export, and its namespace' : 'its default export', value: mod };
}

/** What a value is, for an operator: its type, name or constructor, arity, a few keys. */
export function describeValue(x: unknown): string {
  if (x === null || x === undefined) return String(x);
  if (typeof x === 'function') {
    const n = x.length;
    // `export default () => ...` is named "default" by the language, which says nothing.
    const named = x.name && x.name !== 'default' ? `function ${x.name}` : 'an anonymous function';
    return `${named} declaring ${n} parameter${n === 1 ? '' : 's'}`;
  }
  if (typeof x === 'object') {
    const ctor = (Object.getPrototypeOf(x) as { constructor?: { name?: string } } | null)?.constructor?.name;
    // Underscored keys are internals (an EventEmitter's _events): the public ones say what it is.
    const keys = Object.keys(x).filter((k) => !k.startsWith('_')).slice(0, 6);
    const named = ctor && ctor !== 'Object' ? `${/^[aeiou]/i.test(ctor) ? 'an' : 'a'} ${ctor} object` : 'an object';
    return `${named} with keys [${keys.join(', ')}]`;
  }
  const text = String(x);
  return `a ${typeof x} (${text.length > 40 ? `${text.slice(0, 40)}…` : text})`;
}

/** A pointer for shapes people export by mistake (a framework object instead of its handler). */
function hintFor(x: unknown): string | undefined {
  if (fn(x, 'getHttpAdapter')) {
    return 'It looks like a NestJS application: export an async factory that calls `await app.init()` and returns `app.getHttpAdapter().getInstance()`.';
  }
  if (fn(x, 'callback') && fn(x, 'use')) return 'It looks like a Koa application: export `app.callback()` instead.';
  if (typeof (x as Props | null)?.status === 'number' && fn((x as Props).headers, 'get')) {
    return 'It is a Response: if the function is a fetch handler, export it as `fetch` (`export const fetch = ...`).';
  }
  return undefined;
}
