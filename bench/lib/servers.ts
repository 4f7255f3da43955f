import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT, freePort, killTree, run, startDrover } from './drover';
import { firstLine, portLine, waitUntil } from './wait';

export type PeerKind = 'drover least-busy' | 'drover round-robin' | 'node:cluster' | 'node:cluster, drover workers' | 'pm2 cluster';

/** The bare primaries: node:cluster forking the demo app, or forking workers built of drover's worker pieces. */
const CLUSTER_SCRIPTS: Partial<Record<PeerKind, string>> = {
  'node:cluster': path.join(ROOT, 'bench', 'peers', 'bare-cluster.js'),
  'node:cluster, drover workers': path.join(ROOT, 'dist', 'bench', 'peers', 'cluster-drover-workers.js'),
};

export interface Server {
  url(p: string): string;
  /** drover's control server (probes, /status); absent for the peers that have none. */
  controlUrl?(p: string): string;
  stop(): Promise<void>;
  /** The supervising process (drover's primary, the bare cluster primary); absent for pm2. */
  pid?: number;
}

/** How to run drover or the bare cluster: the cost suite runs them under callgrind. */
export interface RunOptions {
  exec?: string;
  execArgv?: string[];
  /** Extra drover flags. */
  args?: string[];
  timeoutMs?: number;
  /** Idle keep-alive timeout of the workers' HTTP servers (node's and drover's default: 5 s). */
  keepAliveTimeoutMs?: number;
}

const PM2 = path.join(ROOT, 'node_modules', 'pm2', 'bin', 'pm2');

/** The same demo app under each supervisor, `workers` processes, on a free loopback port. */
export async function startPeer(kind: PeerKind, workers: number, o: RunOptions = {}): Promise<Server> {
  if (kind === 'drover least-busy' || kind === 'drover round-robin') {
    const d = await startDrover({
      args: [
        '--workers', String(workers), '--dispatch', kind.split(' ')[1]!,
        ...(o.keepAliveTimeoutMs === undefined ? [] : ['--keep-alive-timeout', `${o.keepAliveTimeoutMs}ms`]),
        ...(o.args ?? []),
      ],
      exec: o.exec, execArgv: o.execArgv, timeoutMs: o.timeoutMs,
    });
    return { url: (p) => d.url(p), controlUrl: (p) => d.controlUrl(p), stop: async () => void (await d.stop()), pid: d.pid };
  }
  const script = CLUSTER_SCRIPTS[kind];
  if (script) {
    const child = spawn(o.exec ?? process.execPath, [...(o.execArgv ?? []), script], {
      env: {
        ...process.env, WORKERS: String(workers), PORT: '0', KEEP_ALIVE_TIMEOUT_MS: o.keepAliveTimeoutMs === undefined ? '' : String(o.keepAliveTimeoutMs),
        // drover flags for the control row's workers (bare-cluster.js runs no drover code and takes none).
        DROVER_ARGS: JSON.stringify(o.args ?? []),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    });
    process.on('exit', () => killTree(child.pid!));
    const port = await firstLine(child, portLine('ready'), 'bare cluster', o.timeoutMs);
    return {
      url: (p) => `http://127.0.0.1:${port}${p}`,
      stop: async () => {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      },
      pid: child.pid,
    };
  }
  // pm2 cluster mode, with a private PM2_HOME so nothing leaks into the user's pm2.
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-bench-pm2-'));
  const port = await freePort();
  const eco = path.join(home, 'ecosystem.config.js');
  fs.writeFileSync(
    eco,
    `module.exports = { apps: [{ name: 'peer', script: ${JSON.stringify(path.join(ROOT, 'bench', 'peers', 'pm2-app.js'))}, ` +
      `exec_mode: 'cluster', instances: ${workers}, env: { PORT: '${port}' } }] };\n`,
  );
  const env = { ...process.env, PM2_HOME: home };
  const started = await run(process.execPath, [PM2, 'start', eco], { env, timeoutMs: 60_000 });
  if (started.code !== 0) throw new Error(`pm2 start failed: ${started.stderr}`);
  const stop = async () => {
    await run(process.execPath, [PM2, 'kill'], { env, timeoutMs: 60_000 });
    fs.rmSync(home, { recursive: true, force: true });
  };
  process.on('exit', () => {
    if (fs.existsSync(home)) spawn(process.execPath, [PM2, 'kill'], { env, stdio: 'ignore', detached: true });
  });
  // pm2 start returns before the instances listen: wait until the port answers, bounded.
  const answers = async () => (await fetch(`http://127.0.0.1:${port}/ping`).catch(() => undefined))?.status === 200;
  await waitUntil(answers, 'pm2 cluster answers', 20_000, 100).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  return { url: (p) => `http://127.0.0.1:${port}${p}`, stop };
}
