-- Time-decayed aggregates: EXP_DECAY_SUM(x, half_life) and EXP_DECAY_COUNT(half_life), with the
-- half-life a quoted duration; DOUBLE results, usable in post-aggregate expressions. Equal
-- calls share a slot whatever the duration's spelling ('60m' is '1h').
CREATE SOURCE plays (user_id STRING, ms BIGINT, score DOUBLE, ts TIMESTAMP);
CREATE FEATURE VIEW decayed AS
SELECT user_id,
  EXP_DECAY_SUM(ms, '1d') AS ms_1d,
  exp_decay_sum(score, '90m') AS score_90m,
  EXP_DECAY_COUNT('1h') AS plays_1h,
  EXP_DECAY_SUM(ms, '1d') / EXP_DECAY_COUNT('60m') AS per_play,
  COALESCE(EXP_DECAY_SUM(CASE WHEN score > 0 THEN ms END, '2w'), 0) AS positive_2w
FROM plays
GROUP BY user_id;
