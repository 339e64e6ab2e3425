import type * as OtelApi from '@opentelemetry/api';

/** The `@opentelemetry/api` module. @internal */
export type OtelModule = typeof OtelApi;

let loading: Promise<OtelModule | null> | undefined;

/**
 * Loads `@opentelemetry/api` (an optional peer dependency) once per process, on first use: an
 * application that does not install it pays one failed import and nothing after it.
 * @internal
 */
export function loadOtelApi(): Promise<OtelModule | null> {
  loading ??= import('@opentelemetry/api').then(
    (mod) => {
      // A CommonJS copy seen from ESM may carry its exports on `default` only.
      const api = mod as Partial<OtelModule> & { default?: OtelModule };
      return typeof api.metrics === 'object' ? (api as OtelModule) : (api.default ?? null);
    },
    () => null,
  );
  return loading;
}
