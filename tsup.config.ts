import { defineConfig } from 'tsup';

// Two builds into one dist/ (`npm run build` empties it first):
// - the library as ESM and CommonJS, with typings, for `import` and `require`;
// - the CLI as ESM only (bin/pgfence.js imports it), with code splitting so that it shares the
//   library's ESM chunk instead of carrying a second copy of it.
// No source maps: they would point at sources the package does not ship.
const common = {
  target: 'node20',
  sourcemap: false,
  clean: false,
  shims: true,
  // Class names are how an error from the other build is matched to its class (error-brand.ts).
  keepNames: true,
} as const;

export default defineConfig([
  {
    ...common,
    entry: { index: 'src/index.ts', 'cli/main': 'src/cli/main.ts' },
    format: ['esm'],
    splitting: true,
    dts: { entry: { index: 'src/index.ts' } },
  },
  {
    ...common,
    entry: { index: 'src/index.ts' },
    format: ['cjs'],
    splitting: false,
    dts: { entry: { index: 'src/index.ts' } },
  },
]);
