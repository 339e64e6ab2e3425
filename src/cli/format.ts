/** A table cell: its text, and how to colour it once padded (so colours never shift columns). */
export type Cell = string | { text: string; style: (text: string) => string };

const text = (cell: Cell): string => (typeof cell === 'string' ? cell : cell.text);

/** Pads columns to their widest cell; the first row is the header. */
export function table(rows: Cell[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, text(cell).length)));
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => {
          const padded = i === row.length - 1 ? text(cell) : text(cell).padEnd(widths[i] ?? 0);
          return typeof cell === 'string' ? padded : cell.style(padded);
        })
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** A span of milliseconds as an operator reads it: 850ms, 12.3s, 4m05s, 2h07m. */
export function formatAge(ms: number): string {
  const n = Math.max(0, Math.round(ms));
  if (n < 1_000) return `${n}ms`;
  if (n < 60_000) return `${(Math.floor(n / 100) / 10).toFixed(1)}s`;
  const s = Math.floor(n / 1_000);
  if (s < 3_600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  const m = Math.floor(s / 60);
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
