// Scenario 6: contended advisory acquire across processes. 8 processes (a PgFence each, one
// caller each) loop on one key: lock → release → 1 ms of work outside the lock. Reported:
// the acquire wait (asked → granted) p50/p99, each process's share of the grants as a
// fraction of a fair share, how often the releasing process took the key straight back, and
// the hand-off (a release → the next grant to another process). Subjects: pgfence's waiter
// blocked in the server's FIFO lock queue, and the waiter it had before (tryLock polling every
// 4–50 ms), side by side in one run.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from '../lib/context.js';
import { Latencies } from '../lib/histogram.js';

const SCENARIO = '6. contended advisory acquire (8 processes, one key)';
const PROCESSES = 8;
const THINK_MS = 1;
const WORKER = fileURLToPath(new URL('../workers/contend.ts', import.meta.url));

type Grant = [asked: number, granted: number, released: number];
type Reply =
  { type: 'ready' } | { type: 'done'; grants: Grant[] } | { type: 'error'; message: string };

function next(child: ChildProcess): Promise<Reply> {
  return new Promise((resolve, reject) => {
    child.once('message', (m: Reply) =>
      m.type === 'error' ? reject(new Error(m.message)) : resolve(m),
    );
    child.once('exit', (code) => reject(new Error(`a bench process exited (${code})`)));
  });
}

const SUBJECTS = [
  { waiter: 'queue', label: 'pgfence lock: waits in the server (FIFO)' },
  { waiter: 'poll', label: 'pgfence lock: polling tryLock 4–50 ms (the waiter before)' },
] as const;

export async function contendedProcesses(ctx: BenchContext): Promise<void> {
  const children = Array.from({ length: PROCESSES }, () =>
    fork(WORKER, [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  try {
    await Promise.all(
      children.map((c) => {
        const ready = next(c);
        c.send({ type: 'open', url: ctx.url, schema: ctx.schema });
        return ready;
      }),
    );
    const rounds = Math.max(2, ctx.params.handoffRounds);
    const tallies = SUBJECTS.map(() => ({
      waits: new Latencies(),
      handoffs: new Latencies(),
      perProcess: new Array<number>(PROCESSES).fill(0),
      self: 0,
      grants: 0,
      ms: 0,
    }));
    for (let r = 0; r < rounds; r += 1) {
      for (const [s, subject] of SUBJECTS.entries()) {
        const key = `contend:${ctx.runId}:${subject.waiter}:${r}`;
        const tally = tallies[s]!;
        const started = performance.now();
        const done = await Promise.all(
          children.map((c) => {
            const reply = next(c);
            c.send({
              type: 'go',
              key,
              waiter: subject.waiter,
              durationMs: ctx.params.handoffRoundMs,
              thinkMs: THINK_MS,
            });
            return reply;
          }),
        );
        tally.ms += performance.now() - started;
        const all = done.flatMap((d, p) =>
          d.type === 'done' ? d.grants.map((g) => ({ p, g })) : [],
        );
        all.sort((a, b) => a.g[1] - b.g[1]);
        for (const [i, { p, g }] of all.entries()) {
          tally.grants += 1;
          tally.perProcess[p]! += 1;
          tally.waits.record(g[1] - g[0]);
          const prev = all[i - 1];
          if (!prev) continue;
          if (prev.p === p) tally.self += 1;
          else tally.handoffs.record(Math.max(0, g[1] - prev.g[2]));
        }
      }
    }
    for (const [s, subject] of SUBJECTS.entries()) {
      const t = tallies[s]!;
      const fair = t.grants / PROCESSES;
      const shares = t.perProcess.map((n) => n / fair);
      ctx.report.row({
        scenario: SCENARIO,
        config: `${PROCESSES} processes, ${THINK_MS} ms outside`,
        subject: subject.label,
        status: 'ok',
        opsPerSec: (t.grants * 1000) / t.ms,
        p50Ms: t.waits.at(50),
        p99Ms: t.waits.at(99),
        note:
          `acquire wait; grants/s; shares of a fair share: min ${Math.min(...shares).toFixed(2)}, ` +
          `max ${Math.max(...shares).toFixed(2)}; self re-grants ${((100 * t.self) / Math.max(1, t.grants)).toFixed(0)}%; ` +
          `hand-off to another process p50 ${t.handoffs.at(50).toFixed(2)} ms, p99 ${t.handoffs.at(99).toFixed(2)} ms`,
      });
      ctx.report.metric(`contended.${subject.waiter}.p99`, t.waits.at(99));
      ctx.report.metric(`contended.${subject.waiter}.min-share`, Math.min(...shares));
    }
    const [queue, poll] = tallies;
    ctx.report.ratio(
      SCENARIO,
      `${PROCESSES} processes`,
      'acquire p99: server queue / polling',
      queue!.waits.at(99) / poll!.waits.at(99),
    );
  } finally {
    for (const c of children) c.disconnect();
  }
}
