import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DroverError, ExitCode, usageError } from './errors';
import { envName, optionSpecs, resolveOptions } from './options';
import type { Status } from './primary/control-server';
import type { BlockingRoute } from './protocol';
import { startPrimary } from './primary/start';

const START_HELP = `Usage: drover start [app] [options]

Runs the app module in N workers behind one port. Its default export is an Express app, a
Fastify instance, a request listener (req, res), an object with fetch(request) (Hono), or a
factory returning one; a .ts app runs through the app's tsx (README: "Running your own app").
Without [app], the bundled demo app runs. Every option can also be set through
the environment variable shown; flags win over the environment. Durations need a unit (500ms,
10s, 2m).

Options:
${optionSpecs.map((s) => `  --${s.flag.padEnd(20)} ${s.help}\n  ${' '.repeat(22)} env ${[envName(s), ...(s.env ?? [])].join(', ')}`).join('\n')}
  --help                 show this help

Exit codes: 0 clean stop, 2 bad usage, 3 app failed to load, 4 crash loop, 5 cannot listen,
6 unexpected primary error, 7 forced stop (second signal during drain).
`;

const CONTROL_FLAGS = `  --control-port <port>   control port of the running drover (env DROVER_CONTROL_PORT, default 3030)
  --control-host <host>   its address (env DROVER_CONTROL_HOST, default 127.0.0.1)`;

const STATUS_HELP = `Usage: drover status [options]

Shows the workers of a running drover (from its control server's GET /status) and, under them,
the routes whose code blocked a worker's event loop longer than --block-threshold.

Options:
${CONTROL_FLAGS}
  --json                  print the raw JSON
  --help                  show this help
`;

const RELOAD_HELP = `Usage: drover reload [options]

Starts a zero-downtime rolling reload: one worker at a time, the new one must listen before the
old one drains; if a new worker fails to boot, the reload stops and the old ones keep serving.
With a token, this calls POST /reload; without one, it sends SIGHUP to the primary's pid
(same machine only).

Options:
${CONTROL_FLAGS}
  --control-token <token> bearer token (env DROVER_CONTROL_TOKEN)
  --wait                  wait until the reload completes or aborts (exit 1 if aborted)
  --help                  show this help
`;

const MAIN_HELP = `Usage: drover <command> [options]

Commands:
  start [app]   run a Node HTTP app in a supervised cluster (see drover start --help)
  status        show the workers of a running drover
  reload        zero-downtime rolling reload of a running drover

drover --version prints the version.
`;

function parse(args: string[], options: Record<string, { type: 'string' | 'boolean' }>, allowPositionals: boolean) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    // parseArgs messages already name the flag ("Unknown option '--wrokers'").
    throw usageError(`${(err as Error).message}. See --help.`);
  }
}

function controlBase(values: Record<string, string | boolean | undefined>): string {
  const env = process.env;
  const portRaw = (values['control-port'] as string | undefined) ?? env.DROVER_CONTROL_PORT ?? '3030';
  if (!/^\d+$/.test(portRaw) || Number(portRaw) > 65535) throw usageError(`--control-port: expected a port number, got '${portRaw}'.`);
  let host = (values['control-host'] as string | undefined) ?? env.DROVER_CONTROL_HOST ?? '127.0.0.1';
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return `http://${host.includes(':') ? `[${host}]` : host}:${portRaw}`;
}

async function fetchStatus(base: string): Promise<Status> {
  let res: Response;
  try {
    res = await fetch(`${base}/status`, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    throw new DroverError('DROVER_ERR_USAGE', `no drover control server answered at ${base} (${(err as Error).cause ?? (err as Error).message}).`, ExitCode.FAILURE);
  }
  return (await res.json()) as Status;
}

const controlOptions = {
  'control-port': { type: 'string' },
  'control-host': { type: 'string' },
  help: { type: 'boolean' },
} as const;

async function status(args: string[]): Promise<number> {
  const { values } = parse(args, { ...controlOptions, json: { type: 'boolean' } }, false);
  if (values.help) return void process.stdout.write(STATUS_HELP), 0;
  const st = await fetchStatus(controlBase(values));
  if (values.json) {
    process.stdout.write(JSON.stringify(st, null, 2) + '\n');
    return 0;
  }
  process.stdout.write(formatStatus(st));
  return 0;
}

export function formatStatus(st: Status, cwd = process.cwd()): string {
  const d = st.drover;
  // A retiring worker still serves until its replacement listens (src/primary/worker-lifecycle.ts).
  const listening = st.workers.filter((w) => w.phase === 'listening' || w.phase === 'retiring').length;
  const mb = (b: number | null) => (b === null ? '-' : `${Math.round(b / 1048576)}MB`);
  const num = (x: number | null, unit = '') => (x === null ? '-' : `${x}${unit}`);
  const head =
    `drover ${d.version}  pid ${d.pid}  ${d.phase}${d.ready ? ' (ready)' : ' (not ready)'}  generation ${d.generation}` +
    `  uptime ${d.uptimeS}s\nworkers ${listening}/${d.workersTarget} listening (count from ${d.workersSource}: ${d.workersDetail})  dispatch ${d.dispatch}  port ${d.port}` +
    (d.reload ? `\nreload to generation ${d.reload.generation} in progress (${d.reload.replaced} replaced)` : '') +
    '\n\n';
  const cols = ['SLOT', 'PID', 'STATE', 'GEN', 'UPTIME', 'BEAT', 'LOOP P99', 'ELU', 'RSS', 'IN-FLIGHT', 'REQUESTS'];
  const rows = st.workers.map((w) => [
    String(w.slot), String(w.pid), w.phase, String(w.generation), `${w.uptimeS}s`, `${w.heartbeatAgeMs}ms`,
    num(w.loopDelayP99Ms, 'ms'), num(w.utilization), mb(w.rssBytes), num(w.inFlight), num(w.requests),
  ]);
  return head + table(cols, rows) + formatBlocks(st, cwd);
}

/**
 * Under the workers table: each worker's top blocking routes, with where its loop was in one
 * captured block. Empty when no worker has had a block, so a healthy drover's status stays short.
 */
export function formatBlocks(st: Status, cwd = process.cwd()): string {
  const appDir = path.dirname(st.drover.app);
  // `?? []`: a drover from before blocks were reported has no such field.
  const rows = st.workers.flatMap((w) =>
    (w.blocks ?? []).map((b: BlockingRoute) => [
      String(w.slot), String(w.pid), b.route, String(b.count), `${b.seconds.toFixed(b.seconds < 10 ? 2 : 1)}s`,
      `${Math.round(b.maxMs)}ms`, whereBlocked(b.stack, appDir, cwd),
    ]),
  );
  if (rows.length === 0) return '';
  return (
    '\nroutes that blocked an event loop for longer than --block-threshold (most blocked time first):\n' +
    table(['SLOT', 'PID', 'ROUTE', 'BLOCKS', 'BLOCKED', 'MAX', 'WHERE'], rows)
  );
}

function table(cols: string[], rows: string[][]): string {
  const widths = cols.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd() + '\n';
  return line(cols) + rows.map(line).join('');
}

/**
 * The frame to show as "where" a route blocked: the innermost frame of the app's own code, since
 * the innermost frame of all is often a library's (express's `res.json`) and says less about what
 * to change; the innermost frame when no frame is the app's. Paths are shortened to the app's
 * folder or the current one when under them, and only the line is kept. `-` when no stack was
 * captured (a block too short for a capture, or the route's capture budget spent).
 */
export function whereBlocked(stack: readonly string[] | undefined, appDir: string, cwd: string): string {
  const frames = (stack ?? []).map(parseFrame);
  const own = frames.find((f) => f.file !== undefined && !/^node:|\/node_modules\//.test(f.file));
  const f = own ?? frames[0];
  if (!f) return '-';
  if (f.file === undefined) return f.text;
  const under = (dir: string) => {
    const rel = path.relative(dir, f.file!);
    return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : undefined;
  };
  const file = f.file.startsWith('node:') ? f.file : (under(appDir) ?? under(cwd) ?? f.file);
  return `${f.fn} (${file}:${f.line})`;
}

/** A frame as the watchdog formats it: `fn (url:line:column)`, url a path or a file: URL. */
function parseFrame(text: string): { text: string; fn: string; file?: string; line?: string } {
  const m = /^(.*?)\s*\((\S.*):(\d+):(\d+)\)$/.exec(text.trim());
  if (!m) return { text, fn: text };
  let file = m[2]!;
  if (file.startsWith('file://')) {
    try {
      file = fileURLToPath(file);
    } catch {
      /* keep the URL as it is */
    }
  }
  return { text, fn: m[1] || '(anonymous)', file, line: m[3] };
}

async function reload(args: string[]): Promise<number> {
  const { values } = parse(args, { ...controlOptions, 'control-token': { type: 'string' }, wait: { type: 'boolean' } }, false);
  if (values.help) return void process.stdout.write(RELOAD_HELP), 0;
  const base = controlBase(values);
  const before = await fetchStatus(base);
  const token = values['control-token'] ?? process.env.DROVER_CONTROL_TOKEN;
  if (token) {
    const res = await fetch(`${base}/reload`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json()) as { error?: string; generation?: number };
    if (res.status !== 202) {
      process.stderr.write(`drover reload: ${body.error ?? `HTTP ${res.status}`}\n`);
      return ExitCode.FAILURE;
    }
  } else {
    process.kill(before.drover.pid, 'SIGHUP');
  }
  process.stdout.write(`reload requested (drover pid ${before.drover.pid}, generation ${before.drover.generation} -> ${before.drover.generation + 1})\n`);
  if (!values.wait) return 0;
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    const st = await fetchStatus(base);
    if (st.drover.reloads.completed > before.drover.reloads.completed) {
      process.stdout.write(`reload complete: generation ${st.drover.generation}\n`);
      return 0;
    }
    if (st.drover.reloads.aborted > before.drover.reloads.aborted) {
      process.stderr.write('reload aborted: a new worker failed to boot; the previous generation keeps serving (see the logs)\n');
      return ExitCode.FAILURE;
    }
  }
}

async function start(args: string[]): Promise<number | undefined> {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const s of optionSpecs) options[s.flag] = { type: 'string' };
  const { values, positionals } = parse(args, options, true);
  if (values.help) return void process.stdout.write(START_HELP), 0;
  if (positionals.length > 1) throw usageError(`drover start takes one app path, got ${positionals.length}: ${positionals.join(' ')}.`);
  const opts = resolveOptions(values as Record<string, string | undefined>, process.env, positionals[0]);
  if (!fs.existsSync(opts.app)) throw usageError(`app module not found: ${opts.app}.`);
  await startPrimary(opts);
  return undefined; // the primary runs until it exits the process itself
}

export async function run(argv: string[]): Promise<number | undefined> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'start':
      return start(rest);
    case 'status':
      return status(rest);
    case 'reload':
      return reload(rest);
    case '--version':
    case '-v':
      process.stdout.write(`${(require('../../package.json') as { version: string }).version}\n`);
      return 0;
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(MAIN_HELP);
      return cmd === undefined ? ExitCode.USAGE : 0;
    default:
      throw usageError(`unknown command '${cmd}'. Commands: start, status, reload.`);
  }
}

export function main(argv: string[]): void {
  run(argv).then(
    (code) => {
      if (code !== undefined) process.exitCode = code;
    },
    (err: unknown) => {
      const code = err instanceof DroverError ? err.exitCode : ExitCode.FAILURE;
      process.stderr.write(`drover: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = code;
    },
  );
}
