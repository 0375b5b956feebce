CREATE SOURCE plays (user_id STRING, country STRING, ms_played BIGINT, ts TIMESTAMP);
CREATE FEATURE VIEW by_user_country WITH (tile = '15m') AS
SELECT user_id, country AS cc, COUNT(*) AS n
FROM plays
WHERE country IN ('SE', 'NO', 'DK') AND ms_played BETWEEN 1000 AND 600000
GROUP BY user_id, country;
