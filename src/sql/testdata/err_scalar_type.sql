CREATE SOURCE plays (user_id STRING, track STRING, ts TIMESTAMP);
CREATE FEATURE VIEW v AS
SELECT user_id, SQRT(MAX(track)) AS bad FROM plays GROUP BY user_id;
