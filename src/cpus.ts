import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface CpuLimit {
  /** Default worker count: the CPU quota rounded up, never more than the cores we can run on. */
  count: number;
  source: 'cgroup' | 'cpus';
  /** Where the number came from, for the startup log and /status. */
  detail: string;
}

function read(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Our cgroup paths from /proc/self/cgroup: v2 ("0::/path") and the v1 cpu controller. */
function ownPaths(procSelfCgroup: string): { v2?: string; v1cpu?: string } {
  const out: { v2?: string; v1cpu?: string } = {};
  for (const line of (read(procSelfCgroup) ?? '').split('\n')) {
    const [, controllers, p] = line.split(':');
    if (p === undefined) continue;
    if (controllers === '') out.v2 = p;
    else if (controllers!.split(',').includes('cpu')) out.v1cpu = p;
  }
  return out;
}

/**
 * The CPU count a container may use. `os.availableParallelism()` on Node 20 ignores a cgroup CPU
 * quota, so a pod limited to 1.5 CPUs on a 16-core node would fork 16 workers that fight over
 * 1.5 CPUs. Reads cgroup v2 `cpu.max` ("150000 100000" = 1.5 CPUs, "max ..." = no limit), else
 * cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1 = no limit).
 */
export function detectCpuLimit(
  root = '/sys/fs/cgroup',
  procSelfCgroup = '/proc/self/cgroup',
  cores = os.availableParallelism(),
): CpuLimit {
  const own = ownPaths(procSelfCgroup);
  const fromQuota = (quota: number, period: number, file: string): CpuLimit | undefined => {
    if (!(quota > 0 && period > 0)) return undefined;
    const cpus = quota / period;
    return { count: Math.max(1, Math.min(cores, Math.ceil(cpus))), source: 'cgroup', detail: `${file}: ${quota}/${period} = ${Math.round(cpus * 100) / 100} CPUs, ${cores} cores` };
  };
  const v2Files = [...new Set([path.join(root, own.v2 ?? '/', 'cpu.max'), path.join(root, 'cpu.max')])];
  for (const file of v2Files) {
    const text = read(file);
    if (text === undefined) continue;
    const [quota, period] = text.split(/\s+/);
    if (quota === 'max') return { count: cores, source: 'cpus', detail: `${file}: no quota; ${cores} cores` };
    const limit = fromQuota(Number(quota), Number(period ?? 100000), file);
    if (limit) return limit;
  }
  for (const dir of [...new Set([path.join(root, 'cpu', own.v1cpu ?? '/'), path.join(root, 'cpu'), path.join(root, 'cpu,cpuacct')])]) {
    const quota = read(path.join(dir, 'cpu.cfs_quota_us'));
    if (quota === undefined) continue;
    const limit = fromQuota(Number(quota), Number(read(path.join(dir, 'cpu.cfs_period_us')) ?? 100000), path.join(dir, 'cpu.cfs_quota_us'));
    if (limit) return limit;
    return { count: cores, source: 'cpus', detail: `${path.join(dir, 'cpu.cfs_quota_us')}: no quota; ${cores} cores` };
  }
  return { count: cores, source: 'cpus', detail: `no cgroup CPU quota found; ${cores} cores` };
}
