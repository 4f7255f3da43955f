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

/** Every descendant of `root` (workers of a primary), from /proc. */
export function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const ppid = statFields(Number(e))?.[1];
    if (ppid !== undefined) parent.set(Number(e), Number(ppid)); // else: exited meanwhile
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const [child, p] of parent) if (p === pid) (out.push(child), walk(child));
  };
  walk(root);
  return out;
}

/** A process and its descendants, as they are now. */
export const tree = (pid: number): number[] => [pid, ...descendants(pid)];
