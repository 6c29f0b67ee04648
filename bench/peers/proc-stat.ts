/**
 * What the peers benchmark reads from Linux's /proc: the CPU time a server's processes used (user + system, all
 * threads, and the descendants alive at the time), and the load average. Elsewhere both read as null and the
 * result says so rather than guessing.
 */
import { execFileSync } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ); 100 on every Linux seen, asked once. */
let ticksPerSecond: number | null = null;

function clockTicksPerSecond(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** utime + stime of one process (every thread), in seconds; null once it is gone. */
async function processCpuSeconds(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may itself hold spaces or parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Field 3 of the rest is stat's field 3 (state); utime and stime are stat's fields 14 and 15.
    const utime = Number(fields[14 - 3]);
    const stime = Number(fields[15 - 3]);
    return (utime + stime) / clockTicksPerSecond();
  } catch {
    return null;
  }
}

async function childrenOf(pid: number): Promise<number[]> {
  const children: number[] = [];
  try {
    for (const tid of await readdir(`/proc/${pid}/task`)) {
      const text = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
      for (const word of text.split(' ')) if (word.trim()) children.push(Number(word));
    }
  } catch {
    // gone
  }
  return children;
}

/** The pids and every descendant alive now. */
export async function processTree(roots: readonly number[]): Promise<number[]> {
  const seen = new Set<number>();
  const queue = [...roots];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    queue.push(...(await childrenOf(pid)));
  }
  return [...seen];
}

/** CPU seconds per process of the trees under `roots`, keyed by pid (a process that exits drops out). */
export async function cpuSecondsByPid(roots: readonly number[]): Promise<Map<number, number> | null> {
  if (process.platform !== 'linux') return null;
  const out = new Map<number, number>();
  for (const pid of await processTree(roots)) {
    const seconds = await processCpuSeconds(pid);
    if (seconds !== null) out.set(pid, seconds);
  }
  return out;
}

/**
 * CPU seconds used between two samples: processes in both count their difference, processes born in between
 * count all they used (they started from zero).
 */
export function cpuSecondsBetween(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, seconds] of after) total += seconds - (before.get(pid) ?? 0);
  return total;
}

/** The 1-minute load average, or null off Linux. */
export async function loadAverage1m(): Promise<number | null> {
  try {
    return Number((await readFile('/proc/loadavg', 'utf8')).split(' ')[0]);
  } catch {
    return null;
  }
}
