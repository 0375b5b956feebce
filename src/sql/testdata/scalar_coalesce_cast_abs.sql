-- COALESCE (first non-NULL argument), CAST and ABS over aggregates, as derived features write
-- them: an empty window gets a default, counts become DOUBLE ratios, text is parsed.
CREATE SOURCE plays (user_id STRING, ms BIGINT, score DOUBLE, label STRING, skipped BOOLEAN,
  ts TIMESTAMP);
CREATE FEATURE VIEW derived AS
SELECT user_id,
  COALESCE(SUM(ms), 0) AS total_ms,
  COALESCE(AVG(score), MIN(ms), 0) AS score_or_ms,
  CAST(COUNT(*) AS DOUBLE) AS plays,
  CAST(SUM(CAST(skipped AS BIGINT)) AS DOUBLE) / CAST(COUNT(*) AS DOUBLE) AS skip_rate,
  CAST(MAX(ts) AS BIGINT) AS last_ms,
  CAST(MAX(ts) AS STRING) AS last_text,
  CAST(AVG(score) AS BIGINT) AS avg_truncated,
  CAST(SUM(ms) AS STRING) || ' ms' AS total_text,
  ABS(SUM(ms) - 1000) AS off_by,
  ABS(MIN(score)) AS abs_min,
  SUM(CAST(label AS BIGINT)) AS label_sum,
  MAX(CAST(label AS TIMESTAMP)) AS label_ts
FROM plays
WHERE COALESCE(skipped, FALSE) = FALSE OR CAST(label AS DOUBLE) > 0
GROUP BY user_id;
-- Slots: $0 SUM(ms), $1 AVG(score), $2 MIN(ms), $3 COUNT(*),
-- $4 SUM(CAST(skipped AS BIGINT)), $5 MAX(ts), $6 MIN(score), $7 SUM(CAST(label AS BIGINT)),
-- $8 MAX(CAST(label AS TIMESTAMP)).
-- @eval derived: 400, 2.75, 100, 4, 1, TIMESTAMP '2026-01-01T00:00:01.5Z', -3.5, 12, TIMESTAMP '2026-01-01T00:00:00Z'
-- @eval derived: NULL, NULL, 7, 0, NULL, NULL, NULL, NULL, NULL
-- BIGINT overflow in ABS is NULL.
-- @eval derived: -9223372036854775807 - 1, NULL, NULL, 1, 0, NULL, NULL, NULL, NULL
-- Text that does not parse as the target type is NULL: ' 42 ' parses, '4x' does not.
-- @row derived: 'u1', 5, 1.5, ' 42 ', TRUE, TIMESTAMP '2026-01-01T00:00:00Z'
-- @row derived: 'u1', 5, 1.5, '4x', NULL, TIMESTAMP '2026-01-01T00:00:00Z'
-- @row derived: 'u1', 5, 1.5, '2026-03-01T12:00:00+01:00', TRUE, TIMESTAMP '2026-01-01T00:00:00Z'
