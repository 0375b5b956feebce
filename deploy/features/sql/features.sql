-- The features engine on Kubernetes (deploy/features): a Kafka topic of plays, one message per
-- play (JSON), keyed by user_id so each user's plays stay in one partition. Every
-- `tessera-worker` pod joins the consumer group 'tessera-features' and reads the partitions
-- the group assigns it; the tiles go to Bigtable (--store), where `tessera-serve` reads them.
CREATE SOURCE plays (
  user_id STRING,
  track_id STRING,
  ms_played BIGINT,
  skipped BOOLEAN,
  country STRING,
  device STRING,
  ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH (
  connector = 'kafka',
  topic = 'plays',
  'properties.bootstrap.servers' = 'kafka:9092',
  'properties.group.id' = 'tessera-features',
  format = 'json'
);

CREATE FEATURE VIEW user_listening WITH (tile = '5m') AS
SELECT user_id,
       COUNT(*) AS plays,
       SUM(ms_played) AS total_ms,
       MAX(ms_played) AS longest_ms,
       APPROX_COUNT_DISTINCT(track_id) AS uniq_tracks,
       LAST_VALUE(track_id) AS last_track,
       SUM(CASE WHEN skipped THEN 1 ELSE 0 END) * 1.0 / COUNT(*) AS skip_rate
FROM plays
GROUP BY user_id;
