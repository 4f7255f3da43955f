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
