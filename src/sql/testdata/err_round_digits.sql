CREATE SOURCE plays (user_id STRING, score DOUBLE, ts TIMESTAMP);
CREATE FEATURE VIEW v AS
SELECT user_id, ROUND(AVG(score), 1.5) AS bad FROM plays GROUP BY user_id;
