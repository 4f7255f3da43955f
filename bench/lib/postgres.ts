/**
 * Starts a throwaway PostgreSQL cluster (Debian's binaries, package `postgresql`) for a test run:
 * its own data dir and socket dir in a temp folder, loopback TCP on a free port, trust auth, one
 * database. PostgreSQL refuses to run as root and there is no systemd here, so when the tests run
 * as root every PostgreSQL command runs as the `postgres` user through `runuser`. In CI a missing
 * install is a failure, not a skip (as for Prometheus): the PostgreSQL tests are the proof that
 * the demo's PostgreSQL backend works.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { freePort, run } from './drover';

const PG_ROOT = '/usr/lib/postgresql';

/** The newest `/usr/lib/postgresql/<version>/bin` holding initdb, pg_ctl and postgres, if any. */
export function postgresBinDir(): string | undefined {
  let versions: string[];
  try {
    versions = fs.readdirSync(PG_ROOT);
  } catch {
    return undefined;
  }
  const usable = versions
    .filter((v) => ['initdb', 'pg_ctl', 'postgres'].every((b) => fs.existsSync(path.join(PG_ROOT, v, 'bin', b))))
    .sort((a, b) => Number(b) - Number(a));
  return usable[0] && path.join(PG_ROOT, usable[0], 'bin');
}

const asRoot = process.getuid?.() === 0;

/** undefined when PostgreSQL tests may run; otherwise the reason to skip (never in CI: there it throws). */
export function postgresSkipReason(): string | undefined {
  let msg: string | undefined;
  if (!postgresBinDir()) msg = `PostgreSQL server binaries not found in ${PG_ROOT}/<version>/bin (Debian package \`postgresql\`; .ci/run installs it)`;
  else if (asRoot && spawnSync('id', ['-u', 'postgres']).status !== 0) msg = 'running as root but there is no `postgres` user to run PostgreSQL as';
  if (msg && process.env.CI) throw new Error(`${msg}: required in CI`);
  return msg;
}

export interface Postgres {
  /** `postgres://postgres@127.0.0.1:<port>/<db>`, trust auth: no password. */
  readonly url: string;
  readonly port: number;
  /** The postmaster's pid (its backends are its children), for CPU accounting. */
  readonly pid: number;
  /** Stops the server (fast shutdown: clients are disconnected) and removes its files. Idempotent. */
  stop(): Promise<void>;
}

/** Runs a PostgreSQL binary as the `postgres` user when we are root; fails loudly on a non-zero exit. */
async function pgRun(bin: string, args: string[], timeoutMs = 30_000): Promise<string> {
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  const r = await run(cmd, argv, { timeoutMs, cwd: os.tmpdir() });
  if (r.code !== 0) throw new Error(`${path.basename(bin)} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

// A test process that dies without its after() hooks must not leave servers behind: SIGQUIT is
// PostgreSQL's immediate shutdown, and a synchronous kill is all an 'exit' handler can do.
const running = new Map<string, () => void>();
process.on('exit', () => {
  for (const kill of running.values()) kill();
});

/** Starts a fresh cluster with database `dbName`; resolves when it accepts connections. */
export async function startPostgres(dbName = 'drover_test'): Promise<Postgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error(postgresSkipReason() ?? 'PostgreSQL not installed');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-pg-'));
  const data = path.join(dir, 'data');
  if (asRoot) {
    const uid = Number(spawnSync('id', ['-u', 'postgres']).stdout.toString().trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres']).stdout.toString().trim());
    fs.chownSync(dir, uid, gid);
  }
  const port = await freePort();
  const pgCtl = path.join(bin, 'pg_ctl');
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    running.delete(dir);
    if (fs.existsSync(path.join(data, 'postmaster.pid'))) {
      await pgRun(pgCtl, ['stop', '-D', data, '-m', 'fast', '-w', '-s', '-t', '30']).catch(() => killPostmaster(data));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    // --no-sync and fsync=off: a throwaway cluster need not survive a power cut, and fsyncs
    // would make the tests wait on a disk the machine shares.
    await pgRun(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    const opts = [`-p ${port}`, `-k ${dir}`, '-c listen_addresses=127.0.0.1', '-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off'];
    running.set(dir, () => killPostmaster(data, 'SIGQUIT'));
    await pgRun(pgCtl, ['start', '-D', data, '-w', '-s', '-t', '30', '-l', path.join(dir, 'server.log'), '-o', opts.join(' ')]);
    const admin = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${dbName}`);
    } finally {
      await admin.end();
    }
  } catch (err) {
    const log = fs.existsSync(path.join(dir, 'server.log')) ? fs.readFileSync(path.join(dir, 'server.log'), 'utf8').slice(-2000) : '';
    await stop();
    throw new Error(`${(err as Error).message}\n${log}`);
  }
  const pid = Number(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  return { url: `postgres://postgres@127.0.0.1:${port}/${dbName}`, port, pid, stop };
}

/** Signals the postmaster named in the data dir's pid file, if it is still there. */
function killPostmaster(data: string, signal: NodeJS.Signals = 'SIGINT'): void {
  try {
    const pid = Number(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (pid > 0) process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}
