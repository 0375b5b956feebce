-- The benchmarks' source and view (make bench, bench-peer, bench-training-set): the reference
-- listening view over the events of `tessera-gen`, one state of every kind a tile holds.
CREATE SOURCE plays (
  user_id STRING, track_id STRING, ms_played BIGINT, skipped BOOLEAN, country STRING,
  device STRING, ts TIMESTAMP
) WITH (connector = 'file', format = 'json');
CREATE FEATURE VIEW user_listening AS
SELECT user_id, COUNT(*) AS plays, SUM(ms_played) AS total_ms, MAX(ms_played) AS longest_ms,
       APPROX_COUNT_DISTINCT(track_id) AS uniq_tracks,
       APPROX_PERCENTILE(ms_played, 0.9) AS p90_ms, LAST_VALUE(track_id) AS last_track
FROM plays GROUP BY user_id;
