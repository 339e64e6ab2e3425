import type { Check } from './check.js';

const MARK = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' } as const;

/** Whether the setup keeps every guarantee: no check failed. */
export function allHold(checks: Check[]): boolean {
  return checks.every((c) => c.status !== 'fail');
}

export function doctorText(target: string, checks: Check[]): string {
  const lines = [`pgfence doctor: ${target}`, ''];
  const width = Math.max(...checks.map((c) => c.id.length));
  for (const c of checks) {
    lines.push(`${MARK[c.status]}  ${c.id.padEnd(width)}  ${c.summary}`);
    for (const d of c.details) lines.push(`${' '.repeat(width + 8)}${d}`);
  }
  lines.push('');
  const failed = checks.filter((c) => c.status === 'fail');
  lines.push(
    failed.length === 0
      ? 'Every pgfence guarantee holds on this setup.'
      : `Not every pgfence guarantee holds on this setup: ${failed.map((c) => c.id).join(', ')}.`,
  );
  return lines.join('\n') + '\n';
}

export function doctorJson(target: string, checks: Check[]): string {
  return JSON.stringify({ target, ok: allHold(checks), checks }, null, 2) + '\n';
}
