export { createPgFence } from './client.js';
export {
  LockError,
  InvalidArgumentError,
  InvalidKeyError,
  LockLostError,
  LockTimeoutError,
  DeadlockError,
  AlreadyReleasedError,
  NotMigratedError,
  NotInTransactionError,
  SessionChangedError,
  PermitsMismatchError,
  ClosedError,
  UnavailableError,
  ReadOnlyError,
  ResourcesExhaustedError,
  StatementCancelledError,
  DatabaseError,
} from './errors.js';
export { isLockError } from './error-brand.js';
export type { LockErrorCode } from './errors.js';
export type { PgFenceOptions, PgFenceConnection, PgFenceSettings, LockMode } from './options.js';
export type { MigrateOptions, MigrationRun } from './schema/migrate.js';
export type {
  TelemetryOptions,
  MeterProviderLike,
  TracerProviderLike,
} from './telemetry/telemetry-options.js';
export type {
  PgFence,
  Transaction,
  ClaimSource,
  Lease,
  LeaseOptions,
  TryLeaseOptions,
  LeaseAllOptions,
  CampaignOptions,
  LeaderInfo,
  ObserveOptions,
  LeaseHolderInfo,
  AdvisoryLock,
  LockOptions,
  TryLockOptions,
  XactLockOptions,
  ClaimOptions,
  ReapOptions,
  ReapPass,
  Reaper,
  ReaperOptions,
  InspectOptions,
  Inspection,
  LeaseInfo,
  LeaseWaiterInfo,
  AdvisoryLockInfo,
} from './types.js';
