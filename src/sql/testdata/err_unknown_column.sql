CREATE SOURCE plays (user_id STRING, ms_played BIGINT, ts TIMESTAMP);
CREATE FEATURE VIEW v AS
SELECT user_id, SUM(ms_plaid) AS total
FROM plays GROUP BY user_id;
