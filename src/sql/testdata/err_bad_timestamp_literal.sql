CREATE SOURCE plays (user_id STRING, ts TIMESTAMP);
CREATE FEATURE VIEW v AS
SELECT user_id, COUNT(*) FROM plays WHERE ts > 'yesterday' GROUP BY user_id;
