import pc from 'picocolors';
import type { DemoSummary } from './verify.js';
import type { DemoEvent, DemoState, WorkerState } from './state.js';

/** How the demo shows itself: a live screen, log lines, or JSON lines. */
export interface DemoView {
  event(event: DemoEvent): void;
  /** Called often; a view redraws or ignores it. */
  tick(state: DemoState): void;
  summary(summary: DemoSummary, state: DemoState): void;
  /** Leaves the terminal as it found it (also after Ctrl-C). */
  close(): void;
}

export function createView(mode: 'tty' | 'plain' | 'json'): DemoView {
  if (mode === 'json') return new JsonView();
  if (mode === 'tty') return new LiveView();
  return new LogView();
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1).padStart(5)}s`;

function holdsText(w: WorkerState, colour: boolean): string {
  const parts = [...w.holds].map(([key, token]) => {
    const text = token === null ? `${key} (lock)` : `${key} #${token}`;
    if (!w.stale.has(key)) return text;
    return colour ? pc.red(`${text} stale`) : `${text} stale`;
  });
  return parts.length === 0 ? '-' : parts.join(', ');
}

/** The closing summary as text lines. */
export function summaryLines(summary: DemoSummary, state: DemoState): string[] {
  const killed = state.workers.find((w) => w.status === 'killed');
  const lines = [
    'summary, checked by SQL on the demo tables:',
    `  jobs           ${summary.doneOnce}/${summary.jobs} done exactly once (${summary.doneTwice} twice, ${summary.notDone} never)`,
    `  fenced writes  ${summary.writesAccepted} accepted, ${summary.staleWritesRefused} stale refused by is_current()`,
    `  takeovers      ${summary.takeovers} leases taken over with a larger token after their holder stopped renewing`,
  ];
  if (killed) {
    lines.push(
      `  killed worker  w${killed.id} held ${summary.killedWorkerJobs} unfinished jobs; ${summary.killedWorkerJobsRedone} claimed again and done by others`,
    );
  }
  lines.push(
    `  shared locks   ${summary.sections} critical sections, ${summary.overlaps} overlaps`,
  );
  if (summary.tokenRange) {
    lines.push(`  tokens         ${summary.tokenRange[0]} … ${summary.tokenRange[1]}`);
  }
  lines.push(
    summary.ok ? '  result         PASS' : `  result         FAIL: ${summary.failures.join('; ')}`,
  );
  return lines;
}

class LogView implements DemoView {
  event(event: DemoEvent): void {
    const who = event.worker === undefined ? '' : ` w${event.worker}`;
    process.stdout.write(`[${seconds(event.at)}]${who} ${event.text}\n`);
  }
  tick(): void {}
  summary(summary: DemoSummary, state: DemoState): void {
    process.stdout.write(`\n${summaryLines(summary, state).join('\n')}\n`);
  }
  close(): void {}
}

class JsonView implements DemoView {
  event(event: DemoEvent): void {
    process.stdout.write(JSON.stringify({ ...event, at: Math.round(event.at) }) + '\n');
  }
  tick(): void {}
  summary(summary: DemoSummary): void {
    process.stdout.write(JSON.stringify({ type: 'summary', ...summary }) + '\n');
  }
  close(): void {}
}

/** A screen redrawn in place: workers, what each holds, progress, the latest events. */
class LiveView implements DemoView {
  #lines = 0;
  #last = 0;
  #phases: string[] = [];

  event(event: DemoEvent): void {
    if (event.type === 'phase') this.#phases.push(event.text);
  }

  tick(state: DemoState, force = false): void {
    const now = performance.now();
    if (!force && now - this.#last < 100) return;
    this.#last = now;
    this.#draw(this.#frame(state));
  }

  summary(summary: DemoSummary, state: DemoState): void {
    this.tick(state, true);
    const lines = summaryLines(summary, state);
    const last = lines.length - 1;
    lines[last] = summary.ok ? pc.green(pc.bold(lines[last]!)) : pc.red(pc.bold(lines[last]!));
    process.stdout.write(`\n${lines.join('\n')}\n`);
    this.#lines = 0;
  }

  close(): void {
    process.stdout.write('\x1b[?25h');
  }

  #draw(lines: string[]): void {
    const width = process.stdout.columns ?? 100;
    const clipped = lines.map((l) => clip(l, width));
    const up = this.#lines > 0 ? `\x1b[${this.#lines}A\r` : '';
    process.stdout.write(`\x1b[?25l${up}\x1b[0J${clipped.join('\n')}\n`);
    this.#lines = clipped.length;
  }

  #frame(state: DemoState): string[] {
    const elapsed = performance.now() - state.startedAt;
    const barWidth = 32;
    const filled = Math.round((state.jobsDone / Math.max(1, state.jobs)) * barWidth);
    const bar = pc.green('█'.repeat(filled)) + pc.dim('░'.repeat(barWidth - filled));
    const lines = [
      pc.bold('pgfence demo') +
        pc.dim(
          `  ${state.workers.length} workers · ${state.jobs} jobs · lease TTL ${state.ttlMs / 1000}s · ${(elapsed / 1000).toFixed(1)}s`,
        ),
      ...this.#phases.slice(-2).map((p) => pc.dim(`  ${p}`)),
      '',
      `  ${bar} ${state.jobsDone}/${state.jobs} jobs done · tokens up to ${state.maxToken}`,
      '',
      pc.dim(
        `  ${'worker'.padEnd(7)} ${'pid'.padEnd(8)} ${'state'.padEnd(9)} ${'done'.padStart(5)} ${'refused'.padStart(8)}  holds (key #token)`,
      ),
    ];
    for (const w of state.workers) {
      const status = w.status.padEnd(9);
      const coloured =
        w.status === 'paused'
          ? pc.yellow(status)
          : w.status === 'killed' || w.status === 'failed'
            ? pc.red(status)
            : w.status === 'finished'
              ? pc.dim(status)
              : pc.green(status);
      lines.push(
        `  ${`w${w.id}`.padEnd(7)} ${String(w.pid ?? '-').padEnd(8)} ${coloured} ${String(w.done).padStart(5)} ${String(w.refused).padStart(8)}  ${holdsText(w, true)}`,
      );
    }
    lines.push('');
    for (const e of state.events.filter((e) => e.type !== 'phase').slice(-9)) {
      const colour =
        e.type === 'refused' || e.type === 'kill'
          ? pc.red
          : e.type === 'takeover'
            ? pc.cyan
            : e.type === 'pause' || e.type === 'resume'
              ? pc.yellow
              : pc.dim;
      const who = e.worker === undefined ? '' : `w${e.worker} `;
      lines.push(`  ${pc.dim(seconds(e.at))}  ${colour(who + e.text)}`);
    }
    return lines;
  }
}

/** Cuts a line with colour codes to the terminal's width, so redrawing never wraps. */
function clip(line: string, width: number): string {
  let visible = 0;
  let out = '';
  for (let i = 0; i < line.length; i += 1) {
    if (line[i] === '\x1b') {
      const end = line.indexOf('m', i);
      if (end !== -1) {
        out += line.slice(i, end + 1);
        i = end;
        continue;
      }
    }
    if (visible >= width - 1) break;
    out += line[i];
    visible += 1;
  }
  return out + '\x1b[0m';
}
