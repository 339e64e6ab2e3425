import { InvalidArgumentError } from '../errors.js';
import { loadKysely } from '../util/optional-kysely.js';

/** A query as SQL text with `$1…$n` placeholders and the values they stand for. @internal */
export interface CompiledFrom {
  sql: string;
  parameters: readonly unknown[];
}

/** A Kysely `sql` fragment: compiled here with Kysely's PostgreSQL compiler. */
interface RawBuilderLike {
  readonly isRawBuilder: true;
  toOperationNode(): unknown;
}

/** A Kysely query builder (SelectQueryBuilder…): it compiles itself, with its own dialect and plugins. */
interface CompilableLike {
  compile(): unknown;
}

/**
 * Turns `claim`'s `from` into SQL text and parameters. Accepted, so that Kysely stays an
 * optional peer dependency that is loaded only when a raw fragment needs its compiler:
 * - a Kysely query builder (`db.selectFrom('jobs').select(…)`): its own `compile()`;
 * - a Kysely `sql` fragment (`sql\`SELECT … \``), compiled with Kysely's PostgreSQL compiler
 *   (a fragment needs no Kysely instance; to apply a Kysely instance's plugins, pass
 *   `fragment.compile(db)` instead);
 * - an already compiled query `{ sql, parameters }`, e.g. `fragment.compile(db)`, or SQL
 *   written by hand with `$1…$n` placeholders, for callers without Kysely.
 * @internal
 */
export async function compileFrom(from: unknown): Promise<CompiledFrom> {
  if (from === null || typeof from !== 'object') {
    throw new InvalidArgumentError(
      `"from" must be a Kysely query, a Kysely sql fragment or { sql, parameters }, got ${describe(from)}`,
    );
  }
  if (isCompiled(from)) return checked(from);
  if ((from as Partial<RawBuilderLike>).isRawBuilder === true) {
    return checked(await compileRaw(from as RawBuilderLike));
  }
  if (typeof (from as Partial<CompilableLike>).compile === 'function') {
    return checked((from as CompilableLike).compile());
  }
  throw new InvalidArgumentError(
    '"from" must be a Kysely query, a Kysely sql fragment or { sql, parameters }',
  );
}

function isCompiled(value: object): value is CompiledFrom {
  return 'sql' in value && typeof (value as { sql: unknown }).sql === 'string';
}

async function compileRaw(raw: RawBuilderLike): Promise<unknown> {
  let kysely: typeof import('kysely');
  try {
    kysely = await loadKysely();
  } catch (error) {
    throw new InvalidArgumentError(
      'a Kysely sql fragment was passed as "from" but the kysely package cannot be loaded',
      { cause: error },
    );
  }
  const node = raw.toOperationNode() as Parameters<
    InstanceType<typeof kysely.PostgresQueryCompiler>['compileQuery']
  >[0];
  return new kysely.PostgresQueryCompiler().compileQuery(node, kysely.createQueryId());
}

/** Whitespace, `-- line` and `/* block *\/` comments at the start of a query. */
const LEADING_COMMENTS = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/u;

/** Checks the compiled shape and strips what cannot sit inside a sub-select (a trailing `;`). */
function checked(compiled: unknown): CompiledFrom {
  const { sql, parameters } = (compiled ?? {}) as Partial<CompiledFrom>;
  if (typeof sql !== 'string' || !Array.isArray(parameters)) {
    throw new InvalidArgumentError('"from" did not compile to { sql: string, parameters: [] }');
  }
  const text = sql.replace(/[\s;]+$/u, '');
  const start = text.replace(LEADING_COMMENTS, '');
  if (!/^(\(\s*)*(select|with|values|table)\b/iu.test(start)) {
    throw new InvalidArgumentError(
      `"from" must be a SELECT (or WITH … SELECT) query yielding a "key" column, got: ${text.slice(0, 80)}`,
    );
  }
  return { sql: text, parameters };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  return typeof value;
}
