-- GREATEST / LEAST: the arguments' types unify like COALESCE (BIGINT and DOUBLE mix as DOUBLE);
-- NULL if any argument is NULL; strings compare bytewise; timestamps and booleans are ordered.
CREATE SOURCE plays (user_id STRING, ms BIGINT, score DOUBLE, track STRING, ts TIMESTAMP);
CREATE FEATURE VIEW extremes AS
SELECT user_id,
  GREATEST(MAX(ms), 0) AS max_ms_floor0,
  LEAST(MIN(score), MIN(ms), 1) AS smallest,
  GREATEST(MAX(track), 'm') AS track_or_m,
  LEAST(MIN(ts), TIMESTAMP '2026-01-01T00:00:00Z') AS first_or_cutoff,
  GREATEST(COUNT(*)) AS plays,
  COALESCE(GREATEST(MAX(ms), NULL), -1) AS null_wins,
  SUM(LEAST(ms, 60000)) AS capped_ms
FROM plays
WHERE GREATEST(ms, 0) < 3600000 AND LEAST(track, 'zzz') <> 'zzz'
GROUP BY user_id;
-- Slots: $0 MAX(ms), $1 MIN(score), $2 MIN(ms), $3 MAX(track), $4 MIN(ts), $5 COUNT(*),
-- $6 SUM(LEAST(ms, 60000)).
-- @eval extremes: 30000, 0.5, 100, 'Zed', TIMESTAMP '2025-12-31T23:00:00Z', 4, 90000
-- @eval extremes: -5, 2.0, 7, 'zed', TIMESTAMP '2026-02-01T00:00:00Z', 1, -5
-- @eval extremes: NULL, NULL, NULL, NULL, NULL, 0, NULL
-- @row extremes: 'u1', 90000, 1.0, 'abc', TIMESTAMP '2026-01-01T00:00:00Z'
-- @row extremes: 'u1', -3, 1.0, 'zzz', TIMESTAMP '2026-01-01T00:00:00Z'
-- @row extremes: 'u1', NULL, 1.0, NULL, TIMESTAMP '2026-01-01T00:00:00Z'
