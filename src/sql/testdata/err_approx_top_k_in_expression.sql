CREATE SOURCE plays (user_id STRING, track_id STRING, device STRING, ms_played BIGINT, ts TIMESTAMP);
CREATE FEATURE VIEW v AS
SELECT user_id, CASE WHEN COUNT(*) > 0 THEN APPROX_TOP_K(track_id, 3) END AS heavy FROM plays GROUP BY user_id;
