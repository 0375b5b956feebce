CREATE SOURCE plays (user_id STRING, track_id STRING, ts TIMESTAMP);
CREATE FEATURE VIEW v AS SELECT user_id, track_id, COUNT(*) FROM plays GROUP BY user_id;
