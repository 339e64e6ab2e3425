// The pgfence schema: installed, up to date, and usable by this role.
import { readdirSync } from 'node:fs';
import { MIGRATIONS_TABLE, migrationsDir } from '../../schema/migrate.js';
import type { Check, Query } from './check.js';

/** Migration names this pgfence ships, in order. */
function knownMigrations(): string[] {
  return readdirSync(migrationsDir())
    .filter((f) => /^\d+_.*\.js$/.test(f))
    .map((f) => f.replace(/\.js$/, ''))
    .sort();
}

export async function checkSchema(query: Query, schema: string): Promise<Check> {
  const [found] = await query<{ exists: boolean; usage: boolean; create: boolean }>(
    `SELECT to_regnamespace($1) IS NOT NULL AS exists,
            COALESCE(has_schema_privilege(to_regnamespace($1), 'USAGE'), false) AS usage,
            COALESCE(has_schema_privilege(to_regnamespace($1), 'CREATE'), false) AS create`,
    [schema],
  );
  if (!found!.exists) {
    return {
      id: 'schema',
      status: 'fail',
      summary: `schema "${schema}" does not exist`,
      details: ['Run `pgfence migrate` (or fence.migrate()) with a role that may create it.'],
      facts: { schema, exists: false },
    };
  }
  const problems: string[] = [];
  if (!found!.usage) problems.push(`no USAGE on schema "${schema}"`);
  const tables = await query<{ name: string; ok: boolean }>(
    `SELECT c.relname AS name,
            has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE') AS ok
       FROM pg_class c WHERE c.relnamespace = to_regnamespace($1) AND c.relkind = 'r'
        AND c.relname <> $2 ORDER BY 1`,
    [schema, MIGRATIONS_TABLE],
  );
  for (const t of tables)
    if (!t.ok) problems.push(`not all of SELECT, INSERT, UPDATE, DELETE on ${t.name}`);
  const sequences = await query<{ name: string; ok: boolean }>(
    `SELECT c.relname AS name, has_sequence_privilege(c.oid, 'USAGE') AS ok
       FROM pg_class c WHERE c.relnamespace = to_regnamespace($1) AND c.relkind = 'S' ORDER BY 1`,
    [schema],
  );
  for (const s of sequences) if (!s.ok) problems.push(`no USAGE on sequence ${s.name}`);
  const functions = await query<{ name: string; ok: boolean }>(
    `SELECT p.oid::regprocedure::text AS name, has_function_privilege(p.oid, 'EXECUTE') AS ok
       FROM pg_proc p WHERE p.pronamespace = to_regnamespace($1) ORDER BY 1`,
    [schema],
  );
  for (const f of functions) if (!f.ok) problems.push(`no EXECUTE on ${f.name}`);

  const known = knownMigrations();
  let applied: string[] = [];
  if (found!.usage) {
    const [table] = await query<{ exists: boolean }>(
      `SELECT to_regclass(quote_ident($1) || '.' || quote_ident($2)) IS NOT NULL AS exists`,
      [schema, MIGRATIONS_TABLE],
    );
    if (table!.exists) {
      applied = (
        await query<{ name: string }>(
          `SELECT name FROM "${schema}"."${MIGRATIONS_TABLE}" ORDER BY run_on, id`,
        )
      ).map((r) => r.name);
    }
  }
  const pending = known.filter((m) => !applied.includes(m));
  const unknown = applied.filter((m) => !known.includes(m));
  const facts = {
    schema,
    version: applied.at(-1) ?? null,
    latestKnown: known.at(-1) ?? null,
    pending,
    unknown,
    mayMigrate: found!.create,
    privilegeProblems: problems,
  };
  const details: string[] = [];
  let status: Check['status'] = 'ok';
  if (pending.length > 0) {
    status = 'fail';
    details.push(
      `${pending.length} migration(s) not applied (${pending.join(', ')}): run \`pgfence migrate\`.`,
    );
  }
  if (problems.length > 0) {
    status = 'fail';
    details.push(
      `This role lacks: ${problems.join('; ')}. Grant them (or use the role that ran the migrations).`,
    );
  }
  if (unknown.length > 0) {
    if (status === 'ok') status = 'warn';
    details.push(
      `The schema has migrations this pgfence does not know (${unknown.join(', ')}): a newer pgfence ran them.`,
    );
  }
  const summary =
    status === 'ok' || (pending.length === 0 && problems.length === 0)
      ? `schema "${schema}" at ${facts.version}, usable by this role`
      : pending.length > 0
        ? `schema "${schema}" is behind: ${pending.length} migration(s) pending`
        : `this role cannot use everything in schema "${schema}"`;
  return { id: 'schema', status, summary, details, facts };
}
