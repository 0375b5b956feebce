-- ROUND(x) and ROUND(x, digits): the type of x; half away from zero; negative digits round left
-- of the decimal point; DOUBLE rounds the decimal digits as written (2.675 -> 2.68); a BIGINT
-- result that does not fit is NULL. digits is any BIGINT expression.
CREATE SOURCE orders (shop STRING, cents BIGINT, amount DOUBLE, places BIGINT, ts TIMESTAMP);
CREATE FEATURE VIEW rounded AS
SELECT shop,
  ROUND(AVG(amount), 2) AS avg_amount,
  ROUND(AVG(amount)) AS avg_whole,
  ROUND(SUM(cents), -2) AS cents_hundreds,
  ROUND(SUM(cents), -1) AS cents_tens,
  ROUND(SUM(cents)) AS cents_same,
  ROUND(MAX(amount), -1) AS max_tens,
  ROUND(SUM(amount), MIN(places)) AS sum_places,
  SUM(ROUND(amount)) AS sum_of_rounded
FROM orders
WHERE ROUND(amount, 1) > 0
GROUP BY shop;
-- Slots: $0 AVG(amount), $1 SUM(cents), $2 MAX(amount), $3 SUM(amount), $4 MIN(places),
-- $5 SUM(ROUND(amount)).
-- @eval rounded: 2.675, 1250, 45.0, 1.005, 2, 3.0
-- @eval rounded: -2.5, -1250, -45.0, 1234.5678, -2, -3.0
-- Extremes: 9223372036854775807 rounded to tens does not fit BIGINT (NULL), to hundreds it
-- does; a DOUBLE keeps digits it already lacks; NULL digits give NULL.
-- @eval rounded: 0.1 + 0.2, 9223372036854775807, 1.7976931348623157e308, 9.995, NULL, 0.0
-- @eval rounded: NULL, NULL, NULL, NULL, NULL, NULL
-- @row rounded: 's1', 1, 0.05, 1, TIMESTAMP '2026-01-01T00:00:00Z'
-- @row rounded: 's1', 1, 0.04, 1, TIMESTAMP '2026-01-01T00:00:00Z'
