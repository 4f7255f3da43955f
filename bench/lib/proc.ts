/** What the bench reads of a process from /proc (Linux only, like the rest of the test suite). */
import * as fs from 'node:fs';

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

/** Starts a clock of these processes' CPU time: reading it gives the ms they used since. */
export function cpuClock(pids: number[]): () => number {
  const before = pids.map(cpuNs);
  return () => pids.reduce((sum, pid, i) => sum + cpuNs(pid) - before[i]!, 0) / 1e6;
}
