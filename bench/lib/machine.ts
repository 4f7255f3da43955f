import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  platform: string;
  /** The cgroup CPU quota, if one limits this process ("max" = none). */
  cgroupCpuMax: string | null;
  loadAvg1m: number;
  date: string;
}

/** The facts printed beside every result: numbers from this 2-core shared machine are ratios. */
export function machineFacts(): Machine {
  let cgroupCpuMax: string | null = null;
  try {
    cgroupCpuMax = fs.readFileSync('/sys/fs/cgroup/cpu.max', 'utf8').trim();
  } catch {
    /* no cgroup v2 quota file */
  }
  return {
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    cgroupCpuMax,
    loadAvg1m: Math.round(os.loadavg()[0]! * 100) / 100,
    date: new Date().toISOString(),
  };
}

/** A program's path, looked up on PATH and in the sbin folders Debian puts daemons in (often not on PATH). */
export function findProgram(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin'];
  return dirs.filter(Boolean).map((d) => path.join(d, name)).find((f) => fs.existsSync(f));
}
