import { createRequire } from 'node:module';

/**
 * The installed package's version, read from its package.json when asked (never copied into the
 * build, so it cannot go stale). The package refers to itself by name, which its `exports`
 * allow from inside it, wherever the bundler put this module.
 */
export function packageVersion(): string {
  const manifest = createRequire(import.meta.url)('pgfence/package.json') as { version: string };
  return manifest.version;
}
