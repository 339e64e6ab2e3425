// Loads the SQL a migration installs from a plain .sql file in migrations/sql/, where psql,
// formatters and reviewers can read it, and fills its placeholders for the schema being
// migrated (graphile-worker's :GRAPHILE_WORKER_SCHEMA is the model). This folder and sql/ sit
// below migrations/, so node-pg-migrate, which reads only the files directly in it, never takes
// them for migrations.
//
// Placeholders (a colon and upper-case name; `::` casts never match):
//   :PGFENCE_SCHEMA            the schema, as a quoted identifier
//   :PGFENCE_ACQUIRE_CLASS_ID  the int4 class id under which acquirers of one key serialise
//   :PGFENCE_RELEASED_CHANNEL  the NOTIFY channel of releases, as a string literal
//   :PGFENCE_HANDOFF_CHANNEL   the NOTIFY channel of releases addressed to one waiter, as one
// An unknown placeholder is an error, so a typo cannot install a function that fails later.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

const SQL_DIR = new URL('../sql/', import.meta.url);

/**
 * The schema the migration runs in: node-pg-migrate sets search_path to it.
 * @param {import('node-pg-migrate').MigrationBuilder} pgm
 * @returns {Promise<string>}
 */
export async function currentSchema(pgm) {
  const [row] = await pgm.db.select('SELECT current_schema() AS schema');
  if (!row || typeof row.schema !== 'string') {
    throw new Error('pgfence migrations must run with search_path set to the pgfence schema');
  }
  return row.schema;
}

/**
 * The int4 class id under which acquirers of one key serialise
 * (pg_advisory_xact_lock(class id, hashtext(key))): one per schema, so installs in different
 * schemas never queue on each other. Every migration that serialises acquirers must use it.
 * @param {string} schema
 * @returns {number}
 */
export function serialisationClassId(schema) {
  return createHash('sha256').update(`pgfence-acquire\0${schema}`).digest().readInt32BE(0);
}

/**
 * @param {string} name
 * @returns {string}
 */
export function quoteIdentifier(name) {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * @param {string} value
 * @returns {string}
 */
export function quoteLiteral(value) {
  return `'${value.replaceAll("'", "''")}'`;
}

/**
 * The placeholders' values for one schema.
 * @param {string} schema
 * @returns {Record<string, string>}
 */
export function placeholders(schema) {
  return {
    PGFENCE_SCHEMA: quoteIdentifier(schema),
    PGFENCE_ACQUIRE_CLASS_ID: String(serialisationClassId(schema)),
    PGFENCE_RELEASED_CHANNEL: quoteLiteral(`${schema}.released`),
    PGFENCE_HANDOFF_CHANNEL: quoteLiteral(`${schema}.handoff`),
  };
}

/**
 * `text` with its placeholders filled for `schema`.
 * @param {string} text
 * @param {string} schema
 * @returns {string}
 */
export function fillSql(text, schema) {
  const values = placeholders(schema);
  return text.replace(/(?<!:):([A-Z][A-Z0-9_]*)\b/g, (match, /** @type {string} */ name) => {
    const value = values[name];
    if (value === undefined) throw new Error(`unknown placeholder ${match} in pgfence SQL`);
    return value;
  });
}

/**
 * The SQL of migrations/sql/`file`, filled for `schema`.
 * @param {string} file
 * @param {string} schema
 * @returns {string}
 */
export function loadSql(file, schema) {
  return fillSql(readFileSync(new URL(file, SQL_DIR), 'utf8'), schema);
}
