/**
 * Kysely is an optional peer dependency: loaded the first time a caller hands pgfence one of
 * its objects, then kept. A dynamic import on every call cost about 0.2 ms of a claim (the
 * module loader resolves the specifier each time). A failed load is not kept, so installing
 * Kysely later works without a restart.
 * @internal
 */
let kysely: Promise<typeof import('kysely')> | undefined;

export function loadKysely(): Promise<typeof import('kysely')> {
  kysely ??= import('kysely').catch((error: unknown) => {
    kysely = undefined;
    throw error;
  });
  return kysely;
}
