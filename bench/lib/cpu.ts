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

/** utime + stime of every PostgreSQL process on this machine, by pid; null without /proc. */
async function postgresProcesses(): Promise<Map<string, number> | null> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return null;
  }
  const cpu = new Map<string, number>();
  for (const entry of entries) {
    if (!/^\d+$/u.test(entry)) continue;
    try {
      const command = await readFile(`/proc/${entry}/comm`, 'utf8');
      if (!command.startsWith('postgres')) continue;
    } catch {
      continue;
    }
    const seconds = await processCpu(entry);
    if (seconds !== null) cpu.set(entry, seconds);
  }
  return cpu;
}

/**
 * The CPU every PostgreSQL process on this machine uses between start() and stop()
 * (backends, WAL writer, checkpointer…). Sampled every `everyMs`, so a backend that connects
 * and disconnects in between (a pool that closes its connections) is counted up to its last
 * sample, and one that was there at the start from what it had used by then.
 */
export class PostgresCpu {
  readonly #everyMs: number;
  #first = new Map<string, number>();
  #last = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #sampling: Promise<void> = Promise.resolve();
  #available = true;

  constructor(everyMs = 100) {
    this.#everyMs = everyMs;
  }

  async start(): Promise<void> {
    const now = await postgresProcesses();
    if (now === null) {
      this.#available = false;
      return;
    }
    this.#first = new Map(now);
    this.#last = new Map(now);
    this.#timer = setInterval(() => {
      this.#sampling = this.#sampling.then(() => this.#sample());
    }, this.#everyMs);
  }

  /** Seconds of CPU used since start(); null without /proc. */
  async stop(): Promise<number | null> {
    clearInterval(this.#timer);
    await this.#sampling;
    if (!this.#available) return null;
    await this.#sample();
    let total = 0;
    for (const [pid, last] of this.#last) total += last - (this.#first.get(pid) ?? 0);
    return total;
  }

  async #sample(): Promise<void> {
    const now = await postgresProcesses();
    for (const [pid, seconds] of now ?? []) this.#last.set(pid, seconds);
  }
}
