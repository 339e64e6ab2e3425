// Collects what the scenarios measured, prints it as tables and writes it as JSON.
import type { Measured } from './compare.js';

export interface Row {
  scenario: string;
  config: string;
  subject: string;
  status: 'ok' | 'skipped' | 'failed';
  opsPerSec?: number;
  p50Ms?: number;
  p99Ms?: number;
  /** Anything else worth a column: shares, rows/s, bytes… already formatted. */
  note?: string;
}

export interface Ratio {
  scenario: string;
  config: string;
  label: string;
  /** NaN when one side did not run. */
  value: number;
}

export interface Check {
  target: string;
  measured: string;
  /** undefined: could not be measured (a part missing or failing). */
  met: boolean | undefined;
  note?: string;
}

function fmt(n: number | undefined, digits = 2): string {
  if (n === undefined || Number.isNaN(n)) return '—';
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  return n.toFixed(digits);
}

export function fmtRatio(n: number): string {
  return Number.isNaN(n) ? '—' : `${n.toFixed(2)}×`;
}

function table(headers: string[], lines: string[][]): string {
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)),
  );
  const row = (cells: string[]) =>
    `| ${cells.map((c, i) => (i < 2 || i === cells.length - 1 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  return [
    row(headers),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...lines.map(row),
  ].join('\n');
}

export class Report {
  readonly rows: Row[] = [];
  readonly ratios: Ratio[] = [];
  readonly checks: Check[] = [];
  readonly metrics: Record<string, number> = {};

  /** Adds a subject's figures as a row. */
  measured(
    scenario: string,
    config: string,
    subject: string,
    m: Measured | undefined,
    note?: string,
  ): void {
    if (!m) return;
    this.rows.push({
      scenario,
      config,
      subject,
      status: m.status,
      ...(m.status === 'ok' ? { opsPerSec: m.opsPerSec, p50Ms: m.p50Ms, p99Ms: m.p99Ms } : {}),
      ...(m.status !== 'ok' || note
        ? { note: m.status === 'ok' ? note : `${m.status}: ${m.reason}` }
        : {}),
    });
  }

  row(row: Row): void {
    this.rows.push(row);
  }

  /** Records a ratio of two throughputs (a / b) under `metric`, for the targets. */
  ratio(scenario: string, config: string, label: string, value: number, metric?: string): number {
    this.ratios.push({ scenario, config, label, value });
    if (metric) this.metrics[metric] = value;
    return value;
  }

  metric(name: string, value: number): void {
    this.metrics[name] = value;
  }

  check(check: Check): void {
    this.checks.push(check);
  }

  /** The whole report as Markdown tables (printed, and pasted into RESULTS.md). */
  render(): string {
    const out: string[] = [];
    const scenarios = [...new Set(this.rows.map((r) => r.scenario))];
    for (const scenario of scenarios) {
      out.push(`### ${scenario}`, '');
      out.push(
        table(
          ['configuration', 'subject', 'ops/s', 'p50 ms', 'p99 ms', 'note'],
          this.rows
            .filter((r) => r.scenario === scenario)
            .map((r) => [
              r.config,
              r.subject,
              fmt(r.opsPerSec, 0),
              fmt(r.p50Ms),
              fmt(r.p99Ms),
              r.note ?? '',
            ]),
        ),
        '',
      );
      const ratios = this.ratios.filter((r) => r.scenario === scenario);
      if (ratios.length > 0) {
        out.push(
          table(
            ['configuration', 'ratio', 'value'],
            ratios.map((r) => [r.config, r.label, fmtRatio(r.value)]),
          ),
          '',
        );
      }
    }
    if (this.checks.length > 0) {
      out.push('### Targets', '');
      out.push(
        table(
          ['target', 'measured', 'result'],
          this.checks.map((c) => [
            c.target,
            c.measured,
            c.met === undefined
              ? `not measured${c.note ? `: ${c.note}` : ''}`
              : c.met
                ? 'met'
                : 'NOT MET',
          ]),
        ),
        '',
      );
    }
    return out.join('\n');
  }

  toJSON(): object {
    const clean = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? null : n);
    return {
      rows: this.rows.map((r) => ({
        ...r,
        opsPerSec: clean(r.opsPerSec),
        p50Ms: clean(r.p50Ms),
        p99Ms: clean(r.p99Ms),
      })),
      ratios: this.ratios.map((r) => ({ ...r, value: clean(r.value) })),
      metrics: Object.fromEntries(Object.entries(this.metrics).map(([k, v]) => [k, clean(v)])),
      checks: this.checks,
    };
  }
}
