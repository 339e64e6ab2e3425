// CPU time of processes on this machine, read from /proc (Linux only; null elsewhere or when
// a process has gone): what a statement costs the server, beside what a run takes.
import { readdir, readFile } from 'node:fs/promises';

/** utime + stime of one process, in seconds; null if it cannot be read. */
async function processCpu(pid: number | string): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/** CPU seconds used so far by these processes; null if any of them cannot be read. */
export async function cpuSeconds(pids: number[]): Promise<number | null> {
  let total = 0;
  for (const pid of pids) {
    const seconds = await processCpu(pid);
    if (seconds === null) return null;
    total += seconds;
  }
  return total;
}

/**
 * CPU seconds used so far by every PostgreSQL process on this machine (backends, WAL writer,
 * checkpointer…; those that end in between are not counted); null without /proc.
 */
export async function postgresCpuSeconds(): Promise<number | null> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return null;
  }
  let total = 0;
  for (const entry of entries) {
    if (!/^\d+$/u.test(entry)) continue;
    try {
      const command = await readFile(`/proc/${entry}/comm`, 'utf8');
      if (!command.startsWith('postgres')) continue;
    } catch {
      continue;
    }
    total += (await processCpu(entry)) ?? 0;
  }
  return total;
}
