/** `"schema"."name"`: the schema is validated as a plain identifier before it gets here. @internal */
export function qualified(schema: string, name: string): string {
  return `"${schema}"."${name}"`;
}

/** The NOTIFY channel on which released lease keys are announced. @internal */
export function releasedChannel(schema: string): string {
  return `${schema}.released`;
}

/** The channel of releases addressed to one queued waiter: payload `<waiter id>:<key>`. */
export function handoffChannel(schema: string): string {
  return `${schema}.handoff`;
}
