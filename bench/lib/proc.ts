/**
 * What the bench and the tests read from outside drover: /proc figures of a process, its listening
 * sockets, free ports, a bounded poll, a least-squares slope. Linux only, like the rest of the test suite.
 */
import * as fs from 'node:fs';

/** Resident set size in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

export function threadCount(pid: number): number {
  const m = /^Threads:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

export function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses):
 * [0] is the state (R, S, T, Z, ...), [1] the parent pid. Undefined when there is no such process.
 */
export function statFields(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * CPU time a process has used, in ns, over all its threads (the scheduler's own count from
 * /proc/<pid>/task/<tid>/schedstat: exact, unlike the 10 ms ticks of /proc/<pid>/stat, which
 * bill a whole tick to whoever runs when it fires). 0 for a process that is gone.
 */
export function cpuNs(pid: number): number {
  let total = 0;
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        /* the thread ended meanwhile */
      }
    }
  } catch {
    /* gone */
  }
  return total;
}

/** Gone = no such process, or a zombie waiting to be reaped (it holds nothing any more). */
export function gone(pid: number): boolean {
  const state = statFields(pid)?.[0];
  return state === undefined || state === 'Z';
}

export { freePort } from './drover';

/** Re-checks `cond` every `everyMs` until it holds, bounded; resolves with the wait in ms. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs: number, everyMs = 10): Promise<number> {
  const started = performance.now();
  while (!(await cond())) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return performance.now() - started;
}

/** Least-squares slope of v over t, per minute of t (t in ms). */
export function slopePerMinute(samples: { t: number; v: number }[]): number {
  const n = samples.length;
  if (n < 2) return 0;
  const mt = samples.reduce((a, s) => a + s.t, 0) / n;
  const mv = samples.reduce((a, s) => a + s.v, 0) / n;
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.t - mt) * (s.v - mv);
    den += (s.t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60_000;
}

export const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** TCP sockets the process listens on, with their bound address (IPv4 and IPv6 tables). */
export function listeners(pid: number): { address: string; port: number }[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  const out: { address: string; port: number }[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A' || !inodes.has(cols[9]!)) continue;
      const [hexAddr, hexPort] = cols[1]!.split(':') as [string, string];
      out.push({ address: decodeAddress(hexAddr), port: parseInt(hexPort, 16) });
    }
  }
  return out;
}

/** /proc/net/tcp addresses are the kernel's 32-bit words printed in host (little-endian) order. */
function decodeAddress(hex: string): string {
  if (hex.length === 8) return [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.');
  const words = hex.match(/.{8}/g)!.map((w) => w.match(/../g)!.reverse().join(''));
  const groups = words.join('').match(/.{4}/g)!.map((g) => g.replace(/^0+(?=.)/, ''));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** TCP ports a process is listening on (any address). */
export function listeningPorts(pid: number): number[] {
  return listeners(pid).map((l) => l.port).sort((a, b) => a - b);
}
