CREATE SOURCE ev (user_id STRING, x BIGINT, ts TIMESTAMP);
CREATE FEATURE VIEW lower_keys AS
SELECT LOWER(user_id) AS user, x % 10, COUNT(*) AS n
FROM ev GROUP BY LOWER(user_id), x % 10;
