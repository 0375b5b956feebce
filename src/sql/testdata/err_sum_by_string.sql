CREATE SOURCE plays (user_id STRING, track_id STRING, device STRING, ms_played BIGINT, ts TIMESTAMP);
CREATE FEATURE VIEW v AS
SELECT user_id, SUM_BY(track_id, device) AS tracks FROM plays GROUP BY user_id;
