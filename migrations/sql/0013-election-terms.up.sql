-- pgfence schema (migration 1764130000012_election_terms): a log of election terms, so that
-- observe() yields every term, also one that began and ended between two of its reads.
--
-- Append-only: never edit a migration that has shipped; add a new one instead.
-- Placeholders as in 0001-leases.up.sql.
--
-- A term is a plain lease on the election's name; the lease row says who leads now, and is
-- overwritten by the next term. An observer that read the current leader on each NOTIFY missed
-- a term that began and ended between two reads (a leader that resigned within a round trip of
-- its election, or an observer slow to ask for the next change). campaign() now records its
-- term here, while the term is still current, before it resolves; an observer reads the terms
-- after the last one it yielded, in token order, beside the current lease. A term whose record
-- failed (the database went away just after the grant) is released by its campaign, which then
-- rejects: no leader ever acted in a term observers cannot see.
--
-- The log keeps the newest p_keep terms of each name (campaign passes 1,000), pruned as each
-- term is recorded: an observer more terms behind than that resumes at the oldest kept.

CREATE TABLE :PGFENCE_SCHEMA.election_terms (
  key text NOT NULL,
  token bigint NOT NULL,
  owner text NOT NULL,
  value text,
  began_at timestamptz NOT NULL,
  -- When the term would have ended as granted (it may have been renewed since, or resigned).
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (key, token)
);

-- Records the current term of p_key if it is still the one with p_token, announces it on the
-- released channel (observers read at once, not at their next poll), and prunes the log of the
-- key to its newest p_keep terms. Returns false, recording nothing, when the term is over.
CREATE FUNCTION :PGFENCE_SCHEMA.record_term(p_key text, p_token bigint, p_keep integer)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  v_oldest bigint;
BEGIN
  -- The term's row stays locked until the record commits: a release (DELETE) or a takeover
  -- (UPDATE) of it waits, so no later term can be granted, recorded and read by an observer
  -- before this one is in the log (the observer, past it by token, would never yield it).
  -- A row released or taken over first is not found: the term is over, nothing is recorded.
  PERFORM 1 FROM :PGFENCE_SCHEMA.leases l
  WHERE l.key = p_key AND l.token = p_token AND l.expires_at > clock_timestamp()
  FOR SHARE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO :PGFENCE_SCHEMA.election_terms AS t (key, token, owner, value, began_at, expires_at)
  SELECT l.key, l.token, l.owner, l.metadata->>'value', l.acquired_at, l.expires_at
  FROM :PGFENCE_SCHEMA.leases l
  WHERE l.key = p_key AND l.token = p_token AND l.expires_at > clock_timestamp()
  ON CONFLICT (key, token) DO UPDATE SET expires_at = excluded.expires_at;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  SELECT t.token INTO v_oldest
  FROM :PGFENCE_SCHEMA.election_terms t
  WHERE t.key = p_key
  ORDER BY t.token DESC
  OFFSET greatest(p_keep, 1) - 1
  LIMIT 1;
  IF v_oldest IS NOT NULL THEN
    DELETE FROM :PGFENCE_SCHEMA.election_terms t WHERE t.key = p_key AND t.token < v_oldest;
  END IF;
  PERFORM pg_notify(:PGFENCE_RELEASED_CHANNEL, p_key);
  RETURN true;
END
$fn$;
