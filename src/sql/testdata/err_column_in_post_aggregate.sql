CREATE SOURCE plays (user_id STRING, ms BIGINT, ts TIMESTAMP);
CREATE FEATURE VIEW v AS SELECT user_id, SUM(ms) / ms AS r FROM plays GROUP BY user_id;
