import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './drover';
import { findProgram } from './machine';
import { waitUntil } from './wait';

export interface Nginx {
  /** The loopback port nginx listens on for each upstream, by name. */
  ports: Record<string, number>;
  stop(): Promise<void>;
}

/**
 * A real nginx in front of app servers, configured the way an ingress pools connections to a pod:
 * `keepalive 32` idle upstream connections per worker process (closed after 4 s idle), reused
 * most-recently-used first (nginx's keepalive cache takes from and returns to the head of its
 * queue), HTTP/1.1 with the client's `Connection` header dropped. One nginx worker process: on a
 * 2-core machine more would only take cores from the servers measured. Everything lives in a
 * temporary prefix, so nothing of the system's nginx is read or written.
 */
export async function startNginx(upstreams: Record<string, number>): Promise<Nginx> {
  const bin = findProgram('nginx');
  if (!bin) throw new Error('nginx not found (Debian package nginx-light)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-bench-nginx-'));
  // nginx's worker runs as an unprivileged user when started as root: it must write its temp dirs.
  fs.chmodSync(dir, 0o777);
  const ports: Record<string, number> = {};
  const blocks: string[] = [];
  for (const [name, port] of Object.entries(upstreams)) {
    ports[name] = await freePort();
    blocks.push(
      // keepalive_timeout below the 5 s after which the servers (drover's and Node's default)
      // close an idle connection: with nginx's default (60 s), nginx sends requests on
      // connections the server is closing and reads a reset (seen here: nginx retries a GET on
      // another connection; a POST would get a 502). The side that pools must give up first.
      `  upstream ${name} { server 127.0.0.1:${port}; keepalive 32; keepalive_timeout 4s; }`,
      `  server {`,
      `    listen 127.0.0.1:${ports[name]};`,
      `    location / { proxy_pass http://${name}; proxy_http_version 1.1; proxy_set_header Connection ""; }`,
      `  }`,
    );
  }
  const conf = [
    'worker_processes 1;',
    'daemon off;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log warn;`,
    'events { worker_connections 4096; }',
    'http {',
    '  access_log off;',
    // The S0 payload is 23 MB: buffer it in memory as a proxy would, rather than in temp files.
    '  proxy_buffers 64 64k;',
    '  proxy_max_temp_file_size 0;',
    '  client_max_body_size 64m;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/${t};`),
    ...blocks,
    '}',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf + '\n');
  const child: ChildProcess = spawn(bin, ['-p', dir, '-e', `${dir}/error.log`, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  process.on('exit', () => child.kill('SIGKILL'));
  const stop = async () => {
    child.kill('SIGTERM');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // Ready once every listen port accepts, bounded.
  const listening = async () => {
    if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}`);
    return (await Promise.all(Object.values(ports).map(accepts))).every(Boolean);
  };
  await waitUntil(listening, 'nginx listens', 10_000, 50).catch(async (err: Error) => {
    const why = `${err.message}: ${stderr}${readLog(dir)}`;
    await stop();
    throw new Error(why);
  });
  return { ports, stop };
}

function readLog(dir: string): string {
  try {
    return fs.readFileSync(path.join(dir, 'error.log'), 'utf8');
  } catch {
    return '';
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
