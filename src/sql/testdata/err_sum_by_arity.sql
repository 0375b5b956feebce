CREATE SOURCE plays (user_id STRING, track_id STRING, device STRING, ms_played BIGINT, ts TIMESTAMP);
CREATE FEATURE VIEW v AS
SELECT user_id, SUM_BY(ms_played) AS ms FROM plays GROUP BY user_id;
