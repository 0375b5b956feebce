CREATE SOURCE plays (user_id STRING, ts TIMESTAMP);
CREATE FEATURE VIEW v WITH (tile = 'five minutes') AS
SELECT user_id, COUNT(*) FROM plays GROUP BY user_id;
