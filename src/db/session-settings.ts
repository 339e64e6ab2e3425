/**
 * What pgfence's dedicated connections (advisory sessions, the LISTEN connection) set for
 * themselves, whatever the role or database says. An advisory session sits idle between its
 * batches while it holds locks, and the listener sits idle by design: `idle_session_timeout`
 * would end them (and free their locks) behind pgfence's back. Their statements are bounded on
 * the client side instead. Read from pg_settings so a server without one of these settings
 * (before PostgreSQL 14) is not asked to set it.
 * @internal
 */
export const DEDICATED_SESSION_SETTINGS = `SELECT set_config(name, '0', false)
  FROM pg_settings
  WHERE name IN ('idle_session_timeout', 'idle_in_transaction_session_timeout', 'statement_timeout')`;
