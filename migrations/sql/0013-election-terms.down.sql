-- Undoes 1764130000012_election_terms: no log of terms (observe() reads the current leader).
DROP FUNCTION :PGFENCE_SCHEMA.record_term(text, bigint, integer);
DROP TABLE :PGFENCE_SCHEMA.election_terms;
