-- COUNT_BY / SUM_BY: a MAP {bucket: value} per window; the optional last literal caps the
-- distinct buckets a tile keeps (default 64), the rest folding into "__other__".
CREATE SOURCE plays (
  user_id STRING, device STRING, country STRING, ms_played BIGINT, score DOUBLE,
  skipped BOOLEAN, ts TIMESTAMP
);
CREATE FEATURE VIEW user_buckets AS
SELECT user_id,
  COUNT_BY(device) AS plays_by_device,
  count_by(skipped, 2) AS plays_by_skip,
  SUM_BY(ms_played, device) AS ms_by_device,
  SUM_BY(score, UPPER(country), 1000) AS score_by_country,
  SUM_BY(ms_played, ms_played >= 30000),
  COUNT(*) AS plays,
  SUM(ms_played) AS total_ms
FROM plays
GROUP BY user_id;
