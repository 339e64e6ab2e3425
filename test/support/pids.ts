// Waiting for processes this test started but is not the parent of (a daemon, a server
// started by pg_ctl): once they exit they are reparented, and in a container nobody may reap
// them, so a zombie counts as gone.
import { readFile } from 'node:fs/promises';

/** True once `pid` is gone or a zombie. */
export async function isGone(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // The state follows the command name, which may hold spaces: read after its closing paren.
  return stat === '' || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

/** Waits up to `timeoutMs` for `pid` to be gone; whether it is. */
export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await isGone(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return isGone(pid);
}
