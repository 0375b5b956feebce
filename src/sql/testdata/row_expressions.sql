CREATE SOURCE ev (user_id STRING, name STRING, x BIGINT, y DOUBLE, flag BOOLEAN, ts TIMESTAMP);
CREATE FEATURE VIEW exprs AS
SELECT user_id,
  SUM(CAST(name AS BIGINT)) AS parsed,
  MAX(LOWER(name) || '-' || UPPER(SUBSTR(name, 1, 3))) AS tag,
  SUM(LENGTH(COALESCE(name, ''))) AS chars,
  COUNT(CASE x WHEN 1 THEN 'one' WHEN 2 THEN 'two' END) AS small,
  SUM(x * 2 + 1) AS lin,
  SUM(-x) AS neg
FROM ev
WHERE name IS NOT NULL AND NOT flag AND ts >= '2026-01-01T00:00:00Z'
  AND ts < TIMESTAMP '2027-01-01T00:00:00Z' AND y NOT BETWEEN -1.5 AND 1e3
  AND x NOT IN (1, 2.5) AND (x % 2 = 0 OR y <> 0)
GROUP BY user_id;
