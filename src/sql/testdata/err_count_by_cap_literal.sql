CREATE SOURCE plays (user_id STRING, track_id STRING, device STRING, ms_played BIGINT, ts TIMESTAMP);
CREATE FEATURE VIEW v AS
SELECT user_id, COUNT_BY(device, ms_played) AS devices FROM plays GROUP BY user_id;
