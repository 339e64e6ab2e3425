/** A lease row just written by an acquiring statement, before it is wrapped in a handle. @internal */
export interface AcquiredLease {
  key: string;
  token: bigint;
  acquiredAt: Date;
  expiresAt: Date;
  metadata?: unknown;
  /** A holder of a shared or semaphore key (a row of lease_holders), not a plain lease. */
  holder?: boolean;
}

/** How a handle for an acquired lease should behave. @internal */
export interface AdoptOptions {
  ttlMs: number;
  autoRenew: boolean;
  /** performance.now() when the acquiring statement was sent: the local deadline counts from here. */
  sentAt: number;
}
