CREATE SOURCE ev (k STRING, a BIGINT, b BIGINT, c DOUBLE, p BOOLEAN, q BOOLEAN, ts TIMESTAMP);
CREATE FEATURE VIEW prec AS
SELECT k,
  SUM((a + b) * c) AS s1,
  SUM(a + b * c) AS s2,
  SUM(a - (b - a)) AS s3,
  SUM(-(-a)) AS s4,
  SUM(a - -1) AS s5,
  COUNT(CASE WHEN NOT (p OR q) AND (p IS NULL) = q THEN 1 END) AS s6,
  SUM(a) - (SUM(b) - COUNT(*)) AS s7,
  SUM(a / b / c) AS s8
FROM ev WHERE p OR q AND NOT p GROUP BY k;
