CREATE SOURCE plays (user_id STRING, track_id STRING, device STRING, ms_played BIGINT, ts TIMESTAMP);
CREATE FEATURE VIEW v AS
SELECT user_id, APPROX_HISTOGRAM(ms_played, 10) AS h FROM plays GROUP BY user_id;
