CREATE SOURCE plays (user_id STRING, track_id STRING, ts TIMESTAMP);
CREATE FEATURE VIEW v AS
SELECT user_id, COALESCE(LAST_K(track_id, 5), NULL) AS recent FROM plays GROUP BY user_id;
