CREATE SOURCE plays (user_id STRING, track_id STRING, device STRING, ms_played BIGINT, ts TIMESTAMP);
CREATE FEATURE VIEW v AS
SELECT user_id, APPROX_TOP_K(track_id, 10, 5) AS heavy FROM plays GROUP BY user_id;
