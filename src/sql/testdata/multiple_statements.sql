CREATE SOURCE a (id STRING, v BIGINT, ts TIMESTAMP) WITH (connector = 'pubsub',
  subscription = 'projects/p/subscriptions/a');;
CREATE SOURCE b (id STRING, w DOUBLE, ts TIMESTAMP, WATERMARK FOR ts AS ts);
CREATE FEATURE VIEW va WITH (tile = '1m') AS SELECT id, SUM(v) FROM a GROUP BY id;
CREATE FEATURE VIEW vb WITH (tile = '30m') AS SELECT id, MIN(w), MAX(w) FROM b GROUP BY id;
