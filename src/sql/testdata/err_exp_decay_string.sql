CREATE SOURCE plays (user_id STRING, track STRING, ts TIMESTAMP);
CREATE FEATURE VIEW v AS SELECT user_id, EXP_DECAY_SUM(track, '1d') AS d FROM plays GROUP BY user_id;
