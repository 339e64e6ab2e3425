-- One batch of the plain SKIP LOCKED loop, as the bench's workers send it.
WITH c AS (
  UPDATE :schema.plain_jobs SET status = 1 WHERE id IN (
    SELECT id FROM :schema.plain_jobs WHERE status = 0 ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED
  ) RETURNING id
)
SELECT coalesce(array_agg(id), ARRAY[]::bigint[])::text AS ids FROM c \gset
UPDATE :schema.plain_jobs SET status = 2, done_count = done_count + 1 WHERE id = ANY (:ids::bigint[]);
