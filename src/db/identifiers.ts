/** `"schema"."name"`: the schema is validated as a plain identifier before it gets here. @internal */
export function qualified(schema: string, name: string): string {
  return `"${schema}"."${name}"`;
}

/** The NOTIFY channel on which released lease keys are announced. @internal */
export function releasedChannel(schema: string): string {
  return `${schema}.released`;
}
