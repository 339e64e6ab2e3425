import { describe, expect, it } from 'vitest';

interface SqlFile {
  fillSql(text: string, schema: string): string;
  loadSql(file: string, schema: string): string;
  serialisationClassId(schema: string): number;
}

// Through a computed URL: migrations/ is plain JS that TypeScript does not read.
const sqlFile = (await import(
  new URL('../../migrations/lib/sql-file.js', import.meta.url).href
)) as SqlFile;

describe('the migrations SQL loader', () => {
  it('fills the schema as a quoted identifier, and constants derived from it', () => {
    const filled = sqlFile.fillSql(
      "SELECT nextval(':PGFENCE_SCHEMA.s'), :PGFENCE_ACQUIRE_CLASS_ID, :PGFENCE_RELEASED_CHANNEL, x::text",
      'pg"fen\'ce',
    );
    expect(filled).toBe(
      `SELECT nextval('"pg""fen'ce".s'), ${sqlFile.serialisationClassId('pg"fen\'ce')}, ` +
        `'pg"fen''ce.released', x::text`,
    );
  });

  it('refuses a placeholder it does not know', () => {
    expect(() => sqlFile.fillSql('SELECT :PGFENCE_SCHEMAS.x', 'pgfence')).toThrow(
      /unknown placeholder :PGFENCE_SCHEMAS/,
    );
  });

  it('leaves no placeholder in the shipped files', () => {
    for (const file of [
      '0001-leases.up.sql',
      '0001-leases.down.sql',
      '0002-claim.up.sql',
      '0003-tokens-terms.up.sql',
      '0003-tokens-terms.down.sql',
    ]) {
      const filled = sqlFile.loadSql(file, 'pgfence');
      expect(filled).not.toMatch(/(?<!:):[A-Z]/);
      expect(filled).toContain('"pgfence".leases');
    }
  });

  it('derives the class id acquire_leases has always used', () => {
    // Installed schemas depend on it: acquirers of old and new function versions must queue together.
    expect(sqlFile.serialisationClassId('pgfence')).toBe(-241587346);
  });
});
