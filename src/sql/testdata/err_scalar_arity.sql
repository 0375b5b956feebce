CREATE SOURCE plays (user_id STRING, ms BIGINT, ts TIMESTAMP);
CREATE FEATURE VIEW v AS
SELECT user_id, LOG(2, SUM(ms), 10) AS bad FROM plays GROUP BY user_id;
