CREATE SOURCE plays (user_id STRING, ms BIGINT, skipped BOOLEAN, ts TIMESTAMP);
-- Identical aggregate calls share a slot; unnamed items get derived names.
CREATE FEATURE VIEW derived AS
SELECT user_id,
  SUM(ms) / COUNT(*),
  CASE WHEN COUNT(*) > 0 THEN MAX(ms) END AS max_ms,
  CASE WHEN COUNT(*) > 10 THEN 'heavy' WHEN COUNT(*) > 0 THEN 'light' ELSE 'none' END AS tier,
  SUM(ms) % 7 AS ms_mod,
  COALESCE(MIN(ms), 0) + 1 AS min_plus_one,
  ABS(-SUM(ms)) AS abs_sum,
  SUM(CASE WHEN skipped THEN 1 ELSE 0 END) AS skips
FROM plays GROUP BY user_id;
