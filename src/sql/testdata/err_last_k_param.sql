CREATE SOURCE plays (user_id STRING, track_id STRING, n BIGINT, ts TIMESTAMP);
CREATE FEATURE VIEW v AS SELECT user_id, LAST_K(track_id, n) FROM plays GROUP BY user_id;
