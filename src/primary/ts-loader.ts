import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { usageError } from '../errors';

/** Entries Node 20 cannot run by itself: TypeScript, ESM (.mts) and CommonJS (.cts) flavours. */
const TYPESCRIPT = /\.(?:ts|mts|cts|tsx)$/;

/** `paths` makes require look where the app's own `require('tsx')` would (its node_modules, upward). */
const resolveFrom = (id: string, dir: string) => require.resolve(id, { paths: [dir] });

/**
 * Node flags that make workers run a TypeScript app: `--import` of tsx resolved from the app's
 * folder, so the app's own tsx (its devDependency, its version) compiles it and drover needs none.
 * tsx's package entry (dist/loader.mjs) registers both hooks, ESM and require(); `tsx/esm` alone
 * leaves require() of a .ts file to Node, which fails on the first type annotation. Nothing is
 * added when the primary already runs with tsx (`node --import tsx`): workers inherit its flags.
 * Throws a usage error (exit 2) naming the fix when tsx cannot be found.
 */
export function typeScriptExecArgv(app: string, own: readonly string[], resolve = resolveFrom): string[] {
  if (!TYPESCRIPT.test(app)) return [];
  if (own.some((a) => /\btsx\b/.test(a))) return [];
  const dir = path.dirname(app);
  let entry: string;
  try {
    entry = resolve('tsx', dir);
  } catch {
    throw usageError(
      `${path.basename(app)} is TypeScript; drover runs it through tsx, which cannot be found from ${dir}. ` +
        'Install it next to the app (npm install --save-dev tsx), or run the compiled JavaScript.',
    );
  }
  return ['--import', pathToFileURL(entry).href];
}
