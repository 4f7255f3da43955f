import * as fs from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const cache = new Map<string, { map: SourceMap; dir: string } | null>();

function load(file: string, sourceMapURL: string | undefined): { map: SourceMap; dir: string } | null {
  const cached = cache.get(file);
  if (cached !== undefined) return cached;
  let entry: { map: SourceMap; dir: string } | null = null;
  try {
    // A loader that compiles in memory (tsx) gives V8 code whose map the file on disk lacks: the
    // reference V8 parsed comes first.
    const ref = sourceMapURL || /\/\/# sourceMappingURL=(\S+)\s*$/.exec(fs.readFileSync(file, 'utf8'))?.[1];
    if (ref?.startsWith('data:')) {
      const payload = Buffer.from(ref.slice(ref.indexOf(',') + 1), 'base64').toString('utf8');
      entry = { map: new SourceMap(JSON.parse(payload) as SourceMapPayload), dir: path.dirname(file) };
    } else if (ref) {
      const mapFile = path.resolve(path.dirname(file), ref);
      entry = { map: new SourceMap(JSON.parse(fs.readFileSync(mapFile, 'utf8')) as SourceMapPayload), dir: path.dirname(mapFile) };
    }
  } catch {
    entry = null; // no readable file or map: keep the generated position
  }
  cache.set(file, entry);
  return entry;
}

/**
 * Where a generated position (1-based line and column, as in stacks) came from, if the file has a
 * source map. Used by the watchdog thread, which cannot rely on --enable-source-maps: the
 * inspector reports raw positions of the compiled JavaScript.
 */
export function originalPosition(
  url: string,
  line: number,
  column: number,
  sourceMapURL?: string,
): { file: string; line: number; column: number } | undefined {
  let file = url;
  if (url.startsWith('file://')) file = fileURLToPath(url);
  if (!path.isAbsolute(file)) return undefined;
  const entry = load(file, sourceMapURL);
  if (!entry) return undefined;
  const e = entry.map.findEntry(line - 1, column - 1) as { originalSource?: string; originalLine?: number; originalColumn?: number };
  if (!e.originalSource || e.originalLine === undefined) return undefined;
  const src = e.originalSource.startsWith('file://') ? fileURLToPath(e.originalSource) : path.resolve(entry.dir, e.originalSource);
  return { file: src, line: e.originalLine + 1, column: (e.originalColumn ?? 0) + 1 };
}

/** A call frame at its source position (1-based line and column). */
export interface SourceFrame {
  functionName: string;
  url: string;
  line: number;
  column: number;
}

/**
 * An inspector call frame (0-based location, script named by id) at its source position: the
 * TypeScript (or other compiled-from) file when the script has a source map. `script` is what
 * Debugger.scriptParsed said about the frame's script.
 */
export function sourceFrame(
  f: { functionName: string; url?: string; location: { lineNumber: number; columnNumber?: number } },
  script: { url: string; sourceMapURL?: string } | undefined,
): SourceFrame {
  const url = f.url || script?.url || '<unknown>';
  const line = f.location.lineNumber + 1;
  const column = (f.location.columnNumber ?? 0) + 1;
  const orig = originalPosition(url, line, column, script?.sourceMapURL);
  return { functionName: f.functionName || '<anonymous>', url: orig?.file ?? url, line: orig?.line ?? line, column: orig?.column ?? column };
}

/** `fn (file:line:col)`, as in Node's own stacks. */
export function formatFrame(f: SourceFrame): string {
  return `${f.functionName} (${f.url}:${f.line}:${f.column})`;
}
