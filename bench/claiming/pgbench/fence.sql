-- One batch of pgfence claiming, as the bench's workers send it: the claim statement (the
-- caller's query wrapped by claimFromStatement), then BEGIN, xact_release, the completion
-- UPDATE and COMMIT. :schema is replaced by server-bound.sh.
SELECT coalesce(array_agg(r.key), ARRAY[]::text[])::text AS keys,
       coalesce(array_agg(r.token), ARRAY[]::bigint[])::text AS tokens
FROM :schema.claim_candidates(
  ARRAY(
    SELECT c.key::text FROM (SELECT key FROM :schema.jobs WHERE NOT done ORDER BY id) AS c
    WHERE NOT EXISTS (
      SELECT 1 FROM :schema.leases l WHERE l.key = c.key::text AND l.expires_at > clock_timestamp()
    )
    LIMIT 10::integer
    FOR UPDATE SKIP LOCKED
  ),
  'worker-' || :client_id, 60000::double precision
) AS r \gset
BEGIN;
SELECT coalesce(array_agg(substr(key, 5)), ARRAY[]::text[])::text AS ids
FROM :schema.xact_release(:keys::text[], :tokens::bigint[], 'worker-' || :client_id) \gset
UPDATE :schema.jobs SET done = true, done_count = done_count + 1 WHERE id = ANY (:ids::bigint[]);
COMMIT;
