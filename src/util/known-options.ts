import { InvalidArgumentError } from '../errors.js';

/**
 * Refuses any option name not in `known`, naming it (`what` says whose options they are), so a
 * misspelt option fails loudly instead of being silently ignored.
 * @internal
 */
export function refuseUnknownOptions(
  options: object,
  known: ReadonlySet<string>,
  what: string,
): void {
  for (const name of Object.keys(options)) {
    if (!known.has(name)) throw new InvalidArgumentError(`unknown ${what} option "${name}"`);
  }
}

/**
 * A call's options: `{}` when not given; an object with only `known` names, else an
 * InvalidArgumentError naming what is wrong.
 * @internal
 */
export function optionsObject(
  raw: unknown,
  known: ReadonlySet<string>,
  what: string,
): Record<string, unknown> {
  if (raw === undefined) return {};
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidArgumentError(`${what} options must be an object`);
  }
  refuseUnknownOptions(raw, known, what);
  return raw as Record<string, unknown>;
}
