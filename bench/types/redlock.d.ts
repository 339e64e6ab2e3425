// redlock 5 (beta) ships its typings at dist/index.d.ts but its package.json "exports" map does
// not point at them, so NodeNext resolution cannot find them. This declares the part the bench uses.
declare module 'redlock' {
  import type { Redis } from 'ioredis';

  export interface Settings {
    readonly driftFactor: number;
    /** -1 retries for ever. */
    readonly retryCount: number;
    readonly retryDelay: number;
    readonly retryJitter: number;
    readonly automaticExtensionThreshold: number;
  }

  export interface Lock {
    readonly value: string;
    release(): Promise<unknown>;
  }

  export class ResourceLockedError extends Error {}
  export class ExecutionError extends Error {}

  export default class Redlock {
    constructor(clients: Iterable<Redis>, settings?: Partial<Settings>);
    acquire(resources: string[], duration: number, settings?: Partial<Settings>): Promise<Lock>;
    quit(): Promise<void>;
  }
}
