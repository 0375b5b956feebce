-- LN, LOG (natural; LOG(base, x)), LOG10, LOG2, EXP, SQRT, POWER (alias POW) in row expressions
-- (WHERE, aggregate arguments) and over aggregates. All return DOUBLE; NULL in, NULL out; a
-- domain error, an overflow or a non-finite argument is NULL.
CREATE SOURCE plays (user_id STRING, ms BIGINT, score DOUBLE, ts TIMESTAMP);
CREATE FEATURE VIEW math AS
SELECT user_id,
  LN(1 + COUNT(*)) AS ln_plays,
  LOG(SUM(ms)) AS log_ms,
  LOG(10, SUM(ms)) AS log10_ms,
  LOG10(SUM(ms)) AS log10_ms_too,
  LOG2(MAX(score)) AS log2_best,
  EXP(-COUNT(*) / 10.0) AS decay,
  SQRT(VARIANCE(score)) AS sd,
  POWER(AVG(score), 2) AS avg_sq,
  POW(2, COUNT(*)) AS two_to_n,
  SUM(LN(ms)) AS sum_ln_ms,
  MAX(SQRT(score)) AS max_root
FROM plays
WHERE LOG(2, ms) >= 0 AND EXP(score) IS NOT NULL
GROUP BY user_id;
-- Slots: $0 COUNT(*), $1 SUM(ms), $2 MAX(score), $3 VARIANCE(score), $4 AVG(score),
-- $5 SUM(LN(ms)), $6 MAX(SQRT(score)).
-- @eval math: 3, 1000, 8.0, 4.0, 1.5, 20.7, 2.8
-- Domain edges: LOG of 0 and LOG2 of a negative, SQRT of a negative, 1e200^2 and 2^2000
-- overflow: all NULL.
-- @eval math: 2000, 0, -8.0, -4.0, 1e200, NULL, NULL
-- An empty window: COUNT is 0, the rest NULL; nothing fails.
-- @eval math: 0, NULL, NULL, NULL, NULL, NULL, NULL
-- @row math: 'u1', 1024, 0.25, TIMESTAMP '2026-01-01T00:00:00Z'
-- @row math: 'u1', 0, 1000.0, TIMESTAMP '2026-01-01T00:00:00Z'
-- @row math: 'u1', NULL, -1.0, TIMESTAMP '2026-01-01T00:00:00Z'
